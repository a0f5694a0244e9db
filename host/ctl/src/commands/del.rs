//! `del KEY [RANGE_END]`: delete a key or a range, printing the count (and the pairs).

use std::ffi::OsString;

use clap::Args;
use conclave_client::DeleteOptions;

use crate::context::{Context, Io, os_bytes};
use crate::error::CtlError;
use crate::output::Printer;

/// Removes the specified key or range of keys [key, range_end)
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct DelArgs {
    /// The key, and optionally the end of the range [KEY, RANGE_END)
    #[arg(value_name = "KEY [RANGE_END]")]
    pub args: Vec<OsString>,
    /// delete keys with matching prefix
    #[arg(long)]
    pub prefix: bool,
    /// return deleted key-value pairs
    #[arg(long)]
    pub prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long)]
    pub from_key: bool,
}

impl DelArgs {
    /// The key and options, with etcdctl's errors (getDelOp).
    pub fn to_op(&self) -> Result<(Vec<u8>, DeleteOptions), CtlError> {
        let key = match self.args.as_slice() {
            [key] | [key, _] => key,
            _ => {
                return Err(CtlError::bad_args(
                    "del command needs one argument as key and an optional argument as range_end",
                ));
            }
        };
        if self.prefix && self.from_key {
            return Err(CtlError::bad_args(
                "`--prefix` and `--from-key` cannot be set at the same time, choose one",
            ));
        }
        let mut opts = DeleteOptions::new();
        if let Some(end) = self.args.get(1) {
            if self.prefix || self.from_key {
                return Err(CtlError::bad_args(
                    "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
                ));
            }
            opts = opts.with_range_end(os_bytes(end));
        }
        if self.prefix {
            opts = opts.with_prefix();
        }
        if self.prev_kv {
            opts = opts.with_prev_kv();
        }
        if self.from_key {
            opts = opts.with_from_key();
        }
        Ok((os_bytes(key), opts))
    }
}

pub fn run(ctx: &Context, args: &DelArgs, io: &mut Io<'_>) -> Result<(), CtlError> {
    let (key, opts) = args.to_op()?;
    ctx.format.require_not_table()?;
    let client = ctx.client()?;
    let resp = ctx
        .block_on(client.delete(key, opts))
        .map_err(|e| CtlError::request(&e))?;
    Printer::new(ctx.format, ctx.hex).delete(io.stdout, &resp)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> DelArgs {
        DelArgs {
            args: list.iter().map(OsString::from).collect(),
            ..Default::default()
        }
    }

    fn request(a: &DelArgs) -> (Vec<u8>, Vec<u8>, bool) {
        match a.to_op() {
            Ok((key, opts)) => {
                let r = opts.into_request(key);
                (r.key, r.range_end, r.prev_kv)
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }

    #[test]
    fn flags_map_to_delete_fields() {
        assert_eq!(request(&args(&["k"])), (b"k".to_vec(), vec![], false));
        assert_eq!(
            request(&args(&["a", "c"])),
            (b"a".to_vec(), b"c".to_vec(), false)
        );
        let a = DelArgs {
            prefix: true,
            prev_kv: true,
            ..args(&["ab"])
        };
        assert_eq!(request(&a), (b"ab".to_vec(), b"ac".to_vec(), true));
        let a = DelArgs {
            from_key: true,
            ..args(&[""])
        };
        assert_eq!(request(&a), (vec![0], vec![0], false));
    }

    #[test]
    fn bad_arguments_fail_like_etcdctl() {
        let needs = CtlError::bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        );
        assert_eq!(args(&[]).to_op().err(), Some(needs.clone()));
        assert_eq!(args(&["a", "b", "c"]).to_op().err(), Some(needs));
        let a = DelArgs {
            from_key: true,
            ..args(&["a", "b"])
        };
        assert!(a.to_op().is_err());
    }
}
