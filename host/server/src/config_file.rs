//! `--config-file`: etcd's YAML configuration, read as the command line it stands for. The
//! keys are etcd's flag names, with etcd's nested `client-transport-security`,
//! `peer-transport-security` and `socket-options` and its lists (`log-outputs`,
//! `cipher-suites`, ...). As in etcd, a config file replaces the command line and the
//! environment; a key conclave does not know is reported, not fatal, as etcd's YAML reader
//! skips what it does not know.

use std::path::Path;

use anyhow::Context;
use serde_yaml_ng::Value;

/// The file's settings as `--key=value` arguments, and a warning for each key not in `known`.
pub fn arguments(
    path: &Path,
    known: &dyn Fn(&str) -> bool,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--config-file: cannot read {}", path.display()))?;
    from_yaml(&text, known).with_context(|| format!("--config-file {}", path.display()))
}

fn from_yaml(
    text: &str,
    known: &dyn Fn(&str) -> bool,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let root: Value = serde_yaml_ng::from_str(text).context("not YAML")?;
    let Value::Mapping(map) = root else {
        anyhow::bail!("the YAML is not a mapping of etcd's settings");
    };
    let mut settings: Vec<(String, String)> = Vec::new();
    for (key, value) in map {
        let key = key
            .as_str()
            .with_context(|| format!("a key that is not a string: {key:?}"))?
            .to_string();
        match key.as_str() {
            "client-transport-security" => nested(&value, &key, client_tls_flag, &mut settings)?,
            "peer-transport-security" => nested(&value, &key, peer_tls_flag, &mut settings)?,
            "socket-options" => nested(&value, &key, socket_flag, &mut settings)?,
            // The YAML spells this one differently from the flag.
            "experimental-snapshot-catch-up-entries" => push(
                &mut settings,
                "experimental-snapshot-catchup-entries",
                &value,
            )?,
            _ => push(&mut settings, &key, &value)?,
        }
    }
    let mut args = Vec::new();
    let mut warnings = Vec::new();
    for (name, value) in settings {
        if known(&name) {
            args.push(format!("--{name}={value}"));
        } else {
            warnings.push(format!(
                "config file: {name:?} is not an etcd setting conclave knows; ignored"
            ));
        }
    }
    Ok((args, warnings))
}

/// The settings of a nested mapping, each under the flag `flag_of` names for its key.
fn nested(
    value: &Value,
    section: &str,
    flag_of: fn(&str) -> Option<&'static str>,
    out: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    let Value::Mapping(map) = value else {
        if value.is_null() {
            return Ok(());
        }
        anyhow::bail!("{section} is not a mapping");
    };
    for (key, value) in map {
        let key = key.as_str().unwrap_or_default();
        match flag_of(key) {
            Some(flag) => push(out, flag, value)?,
            // Reported as unknown under a name that says where it was.
            None => push(out, &format!("{section}.{key}"), value)?,
        }
    }
    Ok(())
}

fn client_tls_flag(key: &str) -> Option<&'static str> {
    Some(match key {
        "cert-file" => "cert-file",
        "key-file" => "key-file",
        "client-cert-file" => "client-cert-file",
        "client-key-file" => "client-key-file",
        "client-cert-auth" => "client-cert-auth",
        "trusted-ca-file" => "trusted-ca-file",
        "auto-tls" => "auto-tls",
        "crl-file" => "client-crl-file",
        "allowed-hostname" => "client-cert-allowed-hostname",
        _ => return None,
    })
}

fn peer_tls_flag(key: &str) -> Option<&'static str> {
    Some(match key {
        "cert-file" => "peer-cert-file",
        "key-file" => "peer-key-file",
        "client-cert-file" => "peer-client-cert-file",
        "client-key-file" => "peer-client-key-file",
        "client-cert-auth" => "peer-client-cert-auth",
        "trusted-ca-file" => "peer-trusted-ca-file",
        "auto-tls" => "peer-auto-tls",
        "crl-file" => "peer-crl-file",
        "allowed-cn" => "peer-cert-allowed-cn",
        "allowed-hostname" => "peer-cert-allowed-hostname",
        _ => return None,
    })
}

fn socket_flag(key: &str) -> Option<&'static str> {
    Some(match key {
        "reuse-port" => "socket-reuse-port",
        "reuse-address" => "socket-reuse-address",
        _ => return None,
    })
}

/// One setting, its value as the command line would spell it; an empty or null value is what
/// etcd takes for "not set", so it is left out.
fn push(out: &mut Vec<(String, String)>, name: &str, value: &Value) -> anyhow::Result<()> {
    let scalar = |v: &Value| -> anyhow::Result<Option<String>> {
        Ok(match v {
            Value::Null => None,
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            other => anyhow::bail!("{name}: {other:?} is not a value"),
        })
    };
    let text = match value {
        Value::Sequence(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(scalar)
                .collect::<anyhow::Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
        v => scalar(v)?,
    };
    if let Some(text) = text {
        out.push((name.to_string(), text));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcds_sample_config_becomes_its_command_line() {
        // The shape of etcd's etcd.conf.yml.sample, abridged.
        let yaml = r#"
name: 'infra1'
data-dir: /var/lib/etcd
wal-dir:
snapshot-count: 10000
heartbeat-interval: 100
listen-client-urls: http://localhost:2379
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-pprof: true
client-transport-security:
  cert-file: /etc/etcd/server.crt
  client-cert-auth: true
peer-transport-security:
  trusted-ca-file: /etc/etcd/ca.crt
  auto-tls: false
log-outputs: [stderr, /var/log/etcd.log]
cipher-suites: []
made-up-key: 1
"#;
        let known = |k: &str| k != "made-up-key";
        let (args, warnings) = from_yaml(yaml, &known).unwrap();
        assert_eq!(
            args,
            [
                "--name=infra1",
                "--data-dir=/var/lib/etcd",
                "--snapshot-count=10000",
                "--heartbeat-interval=100",
                "--listen-client-urls=http://localhost:2379",
                "--initial-cluster-state=new",
                "--strict-reconfig-check=false",
                "--enable-pprof=true",
                "--cert-file=/etc/etcd/server.crt",
                "--client-cert-auth=true",
                "--peer-trusted-ca-file=/etc/etcd/ca.crt",
                "--peer-auto-tls=false",
                "--log-outputs=stderr,/var/log/etcd.log",
            ]
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("made-up-key"));
    }

    #[test]
    fn a_file_that_is_not_a_mapping_is_an_error() {
        assert!(from_yaml("- a\n- b\n", &|_| true).is_err());
        assert!(from_yaml("name: [unclosed", &|_| true).is_err());
    }
}
