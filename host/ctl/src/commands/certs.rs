//! `certs init` and `certs add`: make the cluster CA and the members' peer certificates
//! (conclave's own command; etcdctl has none), for the server's `--peer-cert-file`,
//! `--peer-key-file` and `--peer-trusted-ca-file`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::context::Io;
use crate::error::{CtlError, exit};

/// Peer TLS certificates for a conclave cluster
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum CertsCommand {
    /// Makes a cluster CA and a certificate for each member
    Init(InitArgs),
    /// Signs a certificate for a new member with an existing CA
    Add(AddArgs),
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct InitArgs {
    /// Directory to write ca.crt, ca.key and <name>.crt, <name>.key into
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Member names (comma-separated), as given to the server's --name
    #[arg(long, value_delimiter = ',', required = true, value_name = "NAMES")]
    pub names: Vec<String>,
    /// Extra IP addresses or DNS names (comma-separated) every member certificate is valid for
    #[arg(long, value_delimiter = ',', value_name = "HOSTS")]
    pub hosts: Vec<String>,
    /// Replace an existing CA and member certificates
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct AddArgs {
    /// Directory holding the cluster's ca.crt and ca.key; the new files go there too
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The new member's name
    #[arg(long)]
    pub name: String,
    /// Extra IP addresses or DNS names (comma-separated) the certificate is valid for
    #[arg(long, value_delimiter = ',', value_name = "HOSTS")]
    pub hosts: Vec<String>,
}

/// Makes the files and prints each one it wrote, then how to use them.
pub fn run(cmd: &CertsCommand, io: &mut Io<'_>) -> Result<(), CtlError> {
    let failed = |e: conclave_tls::TlsError| CtlError::new(exit::ERROR, e.to_string());
    match cmd {
        CertsCommand::Init(args) => {
            let files = conclave_tls::init_certs(&args.out, &args.names, &args.hosts, args.force)
                .map_err(failed)?;
            for path in files.paths() {
                writeln!(io.stdout, "wrote {}", path.display())?;
            }
            writeln!(
                io.stdout,
                "Give each member its <name>.crt, <name>.key and ca.crt (--peer-cert-file, \
                 --peer-key-file, --peer-trusted-ca-file). Keep ca.key apart: it signs new \
                 members (conclavectl certs add)."
            )?;
        }
        CertsCommand::Add(args) => {
            let files = conclave_tls::add_member_cert(&args.dir, &args.name, &args.hosts)
                .map_err(failed)?;
            writeln!(io.stdout, "wrote {}", files.cert.display())?;
            writeln!(io.stdout, "wrote {}", files.key.display())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use conclave_tls::PeerTls;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<CertsCommand, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("conclavectl").chain(args.iter().copied()))?;
        match cli.command {
            Command::Certs(cmd) => Ok(cmd),
            other => panic!("{args:?} parsed as {other:?}"),
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Runs a command, returning its stdout or its error.
    fn run_capturing(cmd: &CertsCommand) -> Result<String, CtlError> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut stdin: &[u8] = b"";
        let mut io = Io {
            stdin: &mut stdin,
            stdout: &mut stdout,
            stderr: &mut stderr,
        };
        run(cmd, &mut io)?;
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    }

    #[test]
    fn init_takes_lists() {
        let cmd = parse(&[
            "certs",
            "init",
            "--out",
            "d",
            "--names",
            "n1,n2,n3",
            "--hosts",
            "10.0.0.1,db",
        ])
        .unwrap();
        assert_eq!(
            cmd,
            CertsCommand::Init(InitArgs {
                out: "d".into(),
                names: strings(&["n1", "n2", "n3"]),
                hosts: strings(&["10.0.0.1", "db"]),
                force: false,
            })
        );
        let cmd = parse(&["certs", "init", "--out=d", "--names=n1", "--force"]).unwrap();
        assert!(matches!(cmd, CertsCommand::Init(ref a) if a.force && a.hosts.is_empty()));
        assert!(parse(&["certs", "init", "--out", "d"]).is_err());
        assert!(parse(&["certs", "init", "--names", "n1"]).is_err());
    }

    #[test]
    fn add_takes_one_name() {
        let cmd = parse(&["certs", "add", "--dir", "d", "--name", "n4", "--hosts", "h"]).unwrap();
        assert_eq!(
            cmd,
            CertsCommand::Add(AddArgs {
                dir: "d".into(),
                name: "n4".into(),
                hosts: strings(&["h"]),
            })
        );
        assert!(parse(&["certs", "add", "--dir", "d"]).is_err());
    }

    #[test]
    fn init_then_add_make_loadable_certificates() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("pki");
        let init_args = InitArgs {
            out: out.clone(),
            names: strings(&["n1", "n2"]),
            hosts: strings(&["127.0.0.2"]),
            force: false,
        };
        let init = CertsCommand::Init(init_args.clone());
        let printed = run_capturing(&init).unwrap();
        for file in ["ca.crt", "ca.key", "n1.crt", "n1.key", "n2.crt", "n2.key"] {
            let line = format!("wrote {}\n", out.join(file).display());
            assert!(printed.contains(&line), "{printed}");
        }

        let add = CertsCommand::Add(AddArgs {
            dir: out.clone(),
            name: "n3".into(),
            hosts: vec![],
        });
        let printed = run_capturing(&add).unwrap();
        assert!(printed.contains("n3.crt"), "{printed}");

        for name in ["n1", "n2", "n3"] {
            let tls = PeerTls::load(
                &out.join(format!("{name}.crt")),
                &out.join(format!("{name}.key")),
                &out.join("ca.crt"),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(tls.member_name(), name);
        }

        let err = run_capturing(&init).unwrap_err();
        assert_eq!(err.code, exit::ERROR);
        assert!(
            err.message
                .as_deref()
                .unwrap_or_default()
                .contains("already exists"),
            "{err:?}"
        );
        let forced = CertsCommand::Init(InitArgs {
            force: true,
            ..init_args
        });
        run_capturing(&forced).unwrap();
    }

    #[test]
    fn errors_go_to_stderr_with_exit_code_1() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().display().to_string();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut stdin: &[u8] = b"";
        let argv = [
            "conclavectl",
            "certs",
            "init",
            "--out",
            &out,
            "--names",
            "n1,bad_name",
        ];
        let code = crate::run(argv, &mut stdin, &mut stdout, &mut stderr);
        assert_eq!(code, exit::ERROR);
        let stderr = String::from_utf8_lossy(&stderr);
        assert!(
            stderr.starts_with("Error: invalid member name \"bad_name\""),
            "{stderr}"
        );
    }
}
