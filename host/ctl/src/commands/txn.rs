//! `txn`: read a transaction from stdin in etcdctl's format (prompting with `-i`), run it,
//! print SUCCESS or FAILURE and each response.

use clap::Args;

use crate::context::{Context, Io};
use crate::error::CtlError;
use crate::output::Printer;
use crate::txn_input::read_txn;

/// Txn processes all the requests in one transaction, read from stdin: compares, a blank line,
/// success requests, a blank line, failure requests, a blank line
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnArgs {
    /// Input transaction in interactive mode
    #[arg(short, long)]
    pub interactive: bool,
    /// (no arguments are accepted)
    #[arg(hide = true)]
    pub args: Vec<String>,
}

pub fn run(ctx: &Context, args: &TxnArgs, io: &mut Io<'_>) -> Result<(), CtlError> {
    if !args.args.is_empty() {
        return Err(CtlError::bad_args("txn command does not accept argument"));
    }
    ctx.format.require_not_table()?;
    let prompt = if args.interactive {
        Some(&mut *io.stdout)
    } else {
        None
    };
    let txn = read_txn(&mut *io.stdin, prompt)?;
    let client = ctx.client()?;
    let resp = ctx
        .block_on(client.txn(txn))
        .map_err(|e| CtlError::request(&e))?;
    Printer::new(ctx.format, ctx.hex).txn(io.stdout, &resp)?;
    Ok(())
}
