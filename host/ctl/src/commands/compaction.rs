//! `compaction REV [--physical]`: discard the history before a revision.

use clap::Args;

use crate::context::{Context, Io};
use crate::error::{CtlError, exit};
use crate::gofmt::parse_int;

/// Compacts the event history in etcd
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionArgs {
    /// The revision to compact up to
    #[arg(value_name = "REVISION", allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// 'true' to wait for compaction to physically remove all old revisions
    #[arg(long)]
    pub physical: bool,
}

impl CompactionArgs {
    pub fn revision(&self) -> Result<i64, CtlError> {
        let [rev] = self.args.as_slice() else {
            return Err(CtlError::bad_args("compaction command needs 1 argument"));
        };
        parse_int(rev, 10).map_err(|e| CtlError::new(exit::ERROR, e))
    }
}

/// Prints `compacted revision N` whatever the output format, as etcdctl does.
pub fn run(ctx: &Context, args: &CompactionArgs, io: &mut Io<'_>) -> Result<(), CtlError> {
    let rev = args.revision()?;
    let client = ctx.client()?;
    ctx.block_on(client.compact(rev, args.physical))
        .map_err(|e| CtlError::request(&e))?;
    writeln!(io.stdout, "compacted revision {rev}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> CompactionArgs {
        CompactionArgs {
            args: list.iter().map(|s| s.to_string()).collect(),
            physical: false,
        }
    }

    #[test]
    fn revision_is_one_decimal_argument() {
        assert_eq!(args(&["42"]).revision(), Ok(42));
        assert_eq!(
            args(&[]).revision(),
            Err(CtlError::bad_args("compaction command needs 1 argument"))
        );
        assert_eq!(
            args(&["x"]).revision(),
            Err(CtlError::new(
                exit::ERROR,
                "strconv.ParseInt: parsing \"x\": invalid syntax"
            ))
        );
    }
}
