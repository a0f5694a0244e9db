//! `put KEY [VALUE]`: write a key, the value read from stdin when not given, as etcdctl does.

use std::ffi::OsString;
use std::io::Read;

use clap::Args;
use conclave_client::PutOptions;

use crate::context::{Context, Io, os_bytes};
use crate::error::CtlError;
use crate::gofmt::parse_int;
use crate::output::Printer;

const NEEDS_ARGS: &str = "put command needs 1 argument and input from stdin or 2 arguments";

/// Puts the given key into the store (the value is read from stdin when not given)
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct PutArgs {
    /// The key, and the value (read from stdin when absent)
    #[arg(value_name = "KEY [VALUE]")]
    pub args: Vec<OsString>,
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// return the previous key-value pair before modification
    #[arg(long)]
    pub prev_kv: bool,
    /// updates the key using its current value
    #[arg(long)]
    pub ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long)]
    pub ignore_lease: bool,
}

impl PutArgs {
    /// Key, value and options, with etcdctl's errors (getPutOp). Without a value argument the
    /// value is all of `stdin`; with no stdin to read (inside a txn) it is an error.
    pub fn to_op(
        &self,
        stdin: Option<&mut dyn Read>,
    ) -> Result<(Vec<u8>, Vec<u8>, PutOptions), CtlError> {
        let Some(key) = self.args.first() else {
            return Err(CtlError::bad_args(NEEDS_ARGS));
        };
        if self.ignore_value && self.args.len() > 1 {
            return Err(CtlError::bad_args(
                "put command needs only 1 argument when 'ignore-value' is set",
            ));
        }
        let mut value = Vec::new();
        if !self.ignore_value {
            match (self.args.get(1), stdin) {
                (Some(v), _) => value = os_bytes(v),
                (None, Some(stdin)) => {
                    if stdin.read_to_end(&mut value).is_err() || value.is_empty() {
                        return Err(CtlError::bad_args(NEEDS_ARGS));
                    }
                }
                (None, None) => return Err(CtlError::bad_args(NEEDS_ARGS)),
            }
        }
        let lease = parse_int(&self.lease, 16)
            .map_err(|e| CtlError::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
        let mut opts = PutOptions::new();
        if lease != 0 {
            opts = opts.with_lease(lease);
        }
        if self.prev_kv {
            opts = opts.with_prev_kv();
        }
        if self.ignore_value {
            opts = opts.with_ignore_value();
        }
        if self.ignore_lease {
            opts = opts.with_ignore_lease();
        }
        Ok((os_bytes(key), value, opts))
    }
}

pub fn run(ctx: &Context, args: &PutArgs, io: &mut Io<'_>) -> Result<(), CtlError> {
    let (key, value, opts) = args.to_op(Some(&mut *io.stdin))?;
    ctx.format.require_not_table()?;
    let client = ctx.client()?;
    let resp = ctx
        .block_on(client.put(key, value, opts))
        .map_err(|e| CtlError::request(&e))?;
    Printer::new(ctx.format, ctx.hex).put(io.stdout, &resp)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> PutArgs {
        PutArgs {
            args: list.iter().map(OsString::from).collect(),
            lease: "0".into(),
            ..Default::default()
        }
    }

    #[test]
    fn value_comes_from_the_argument_or_stdin() {
        let (k, v, _) = args(&["k", "v"]).to_op(None).expect("valid put");
        assert_eq!((k, v), (b"k".to_vec(), b"v".to_vec()));
        let mut stdin: &[u8] = b"from stdin\n";
        let (_, v, _) = args(&["k"]).to_op(Some(&mut stdin)).expect("valid put");
        assert_eq!(v, b"from stdin\n");
    }

    #[test]
    fn flags_map_to_put_fields() {
        let a = PutArgs {
            lease: "ff".into(),
            prev_kv: true,
            ignore_lease: true,
            ..args(&["k", "v"])
        };
        let (k, v, opts) = a.to_op(None).expect("valid put");
        let req = opts.into_request(k, v);
        assert_eq!(req.lease, 255);
        assert!(req.prev_kv && req.ignore_lease && !req.ignore_value);

        let a = PutArgs {
            ignore_value: true,
            ..args(&["k"])
        };
        let (k, v, opts) = a.to_op(None).expect("valid put");
        let req = opts.into_request(k, v);
        assert!(req.ignore_value && req.value.is_empty());
    }

    #[test]
    fn bad_arguments_fail_like_etcdctl() {
        let mut empty: &[u8] = b"";
        assert_eq!(
            args(&[]).to_op(None).err(),
            Some(CtlError::bad_args(NEEDS_ARGS))
        );
        assert_eq!(
            args(&["k"]).to_op(Some(&mut empty)).err(),
            Some(CtlError::bad_args(NEEDS_ARGS))
        );
        let a = PutArgs {
            ignore_value: true,
            ..args(&["k", "v"])
        };
        assert_eq!(
            a.to_op(None).err(),
            Some(CtlError::bad_args(
                "put command needs only 1 argument when 'ignore-value' is set"
            ))
        );
        let a = PutArgs {
            lease: "zz".into(),
            ..args(&["k", "v"])
        };
        assert_eq!(
            a.to_op(None).err(),
            Some(CtlError::bad_args(
                "bad lease ID (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"
            ))
        );
    }
}
