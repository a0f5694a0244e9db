//! `get KEY [RANGE_END]`: read a key or a range, with etcdctl's flags and checks.

use std::ffi::OsString;

use clap::Args;
use conclave_client::{GetOptions, SortOrder, SortTarget};

use crate::context::{Context, Io, os_bytes};
use crate::error::CtlError;
use crate::gofmt::quote;
use crate::output::{Format, Printer};

/// Gets the key or a range of keys
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct GetArgs {
    /// The key, and optionally the end of the range [KEY, RANGE_END)
    #[arg(value_name = "KEY [RANGE_END]")]
    pub args: Vec<OsString>,
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long = "sort-by", default_value = "")]
    pub sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub limit: i64,
    /// Get keys with matching prefix
    #[arg(long)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long)]
    pub from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub rev: i64,
    /// Get only the keys
    #[arg(long)]
    pub keys_only: bool,
    /// Get only the count (the simple format prints it on one line)
    #[arg(long)]
    pub count_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long)]
    pub print_value_only: bool,
    /// Minimum modification revision
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub min_mod_rev: i64,
    /// Maximum modification revision
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub max_mod_rev: i64,
    /// Minimum create revision
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub min_create_rev: i64,
    /// Maximum create revision
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub max_create_rev: i64,
}

impl GetArgs {
    /// The key and options, with etcdctl's errors and in its order of checks (getGetOp).
    pub fn to_op(&self) -> Result<(Vec<u8>, GetOptions), CtlError> {
        let Some(key) = self.args.first() else {
            return Err(CtlError::bad_args(
                "get command needs one argument as key and an optional argument as range_end",
            ));
        };
        if self.prefix && self.from_key {
            return Err(CtlError::bad_args(
                "`--prefix` and `--from-key` cannot be set at the same time, choose one",
            ));
        }
        if self.keys_only && self.count_only {
            return Err(CtlError::bad_args(
                "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
            ));
        }
        let mut opts = GetOptions::new();
        match self.consistency.as_str() {
            "s" => opts = opts.with_serializable(),
            "l" => {}
            other => {
                return Err(CtlError::bad_feature(format!(
                    "unknown consistency flag {}",
                    quote(other.as_bytes())
                )));
            }
        }
        if let Some(end) = self.args.get(1) {
            if self.prefix || self.from_key {
                return Err(CtlError::bad_args(
                    "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
                ));
            }
            opts = opts.with_range_end(os_bytes(end));
        }
        opts = opts.with_limit(self.limit);
        if self.rev > 0 {
            opts = opts.with_revision(self.rev);
        }
        let order = match self.order.to_uppercase().as_str() {
            "ASCEND" => SortOrder::Ascend,
            "DESCEND" => SortOrder::Descend,
            "" => SortOrder::None,
            _ => {
                return Err(CtlError::bad_feature(format!(
                    "bad sort order {}",
                    self.order
                )));
            }
        };
        let target = match self.sort_by.to_uppercase().as_str() {
            "CREATE" => SortTarget::Create,
            "KEY" | "" => SortTarget::Key,
            "MODIFY" => SortTarget::Mod,
            "VALUE" => SortTarget::Value,
            "VERSION" => SortTarget::Version,
            _ => {
                return Err(CtlError::bad_feature(format!(
                    "bad sort target {}",
                    self.sort_by
                )));
            }
        };
        opts = opts.with_sort(target, order);
        if self.prefix {
            opts = opts.with_prefix();
        }
        if self.from_key {
            opts = opts.with_from_key();
        }
        if self.keys_only {
            opts = opts.with_keys_only();
        }
        if self.count_only {
            opts = opts.with_count_only();
        }
        opts = opts
            .with_min_mod_revision(self.min_mod_rev)
            .with_max_mod_revision(self.max_mod_rev)
            .with_min_create_revision(self.min_create_rev)
            .with_max_create_revision(self.max_create_rev);
        Ok((os_bytes(key), opts))
    }
}

pub fn run(ctx: &Context, args: &GetArgs, io: &mut Io<'_>) -> Result<(), CtlError> {
    let (key, opts) = args.to_op()?;
    ctx.format.require_not_table()?;
    if args.print_value_only && ctx.format != Format::Simple {
        return Err(CtlError::bad_args(
            "print-value-only is only for `--write-out=simple`",
        ));
    }
    let client = ctx.client()?;
    let resp = ctx
        .block_on(client.get(key, opts))
        .map_err(|e| CtlError::request(&e))?;
    let printer = Printer {
        value_only: args.print_value_only,
        count_only: args.count_only,
        ..Printer::new(ctx.format, ctx.hex)
    };
    printer.get(io.stdout, &resp)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit;
    use conclave_client::proto::etcdserverpb::RangeRequest;

    fn args(list: &[&str]) -> GetArgs {
        GetArgs {
            args: list.iter().map(OsString::from).collect(),
            consistency: "l".into(),
            ..Default::default()
        }
    }

    fn request(a: &GetArgs) -> RangeRequest {
        match a.to_op() {
            Ok((key, opts)) => opts.into_request(key),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }

    #[test]
    fn plain_get_is_one_key_linearizable() {
        let req = request(&args(&["foo"]));
        assert_eq!(
            req,
            RangeRequest {
                key: b"foo".to_vec(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn flags_map_to_range_fields() {
        let a = GetArgs {
            prefix: true,
            limit: 5,
            rev: 9,
            consistency: "s".into(),
            order: "descend".into(),
            sort_by: "modify".into(),
            keys_only: true,
            min_create_rev: 2,
            ..args(&["/a/"])
        };
        let req = request(&a);
        assert_eq!(req.range_end, b"/a0");
        assert_eq!((req.limit, req.revision), (5, 9));
        assert!(req.serializable && req.keys_only);
        assert_eq!(req.sort_order, SortOrder::Descend as i32);
        assert_eq!(req.sort_target, SortTarget::Mod as i32);
        assert_eq!(req.min_create_revision, 2);
    }

    #[test]
    fn range_end_and_from_key() {
        assert_eq!(request(&args(&["a", "c"])).range_end, b"c");
        let all = request(&GetArgs {
            from_key: true,
            ..args(&[""])
        });
        assert_eq!((all.key, all.range_end), (vec![0], vec![0]));
        let all = request(&GetArgs {
            prefix: true,
            ..args(&[""])
        });
        assert_eq!((all.key, all.range_end), (vec![0], vec![0]));
    }

    #[test]
    fn sort_by_key_ascending_is_no_sort() {
        let req = request(&GetArgs {
            order: "ASCEND".into(),
            ..args(&["k"])
        });
        assert_eq!(req.sort_order, SortOrder::None as i32);
        let req = request(&GetArgs {
            sort_by: "VALUE".into(),
            ..args(&["k"])
        });
        assert_eq!(
            (req.sort_target, req.sort_order),
            (SortTarget::Value as i32, SortOrder::None as i32)
        );
    }

    #[test]
    fn bad_arguments_fail_like_etcdctl() {
        let cases = [
            (
                args(&[]),
                exit::BAD_ARGS,
                "get command needs one argument as key and an optional argument as range_end",
            ),
            (
                GetArgs {
                    prefix: true,
                    from_key: true,
                    ..args(&["k"])
                },
                exit::BAD_ARGS,
                "`--prefix` and `--from-key` cannot be set at the same time, choose one",
            ),
            (
                GetArgs {
                    prefix: true,
                    ..args(&["a", "b"])
                },
                exit::BAD_ARGS,
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ),
            (
                GetArgs {
                    consistency: "x".into(),
                    ..args(&["k"])
                },
                exit::BAD_FEATURE,
                "unknown consistency flag \"x\"",
            ),
            (
                GetArgs {
                    order: "up".into(),
                    ..args(&["k"])
                },
                exit::BAD_FEATURE,
                "bad sort order up",
            ),
            (
                GetArgs {
                    sort_by: "foo".into(),
                    ..args(&["k"])
                },
                exit::BAD_FEATURE,
                "bad sort target foo",
            ),
        ];
        for (a, code, message) in cases {
            assert_eq!(a.to_op().err(), Some(CtlError::new(code, message)));
        }
    }
}
