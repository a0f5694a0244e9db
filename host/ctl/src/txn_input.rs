//! etcdctl's transaction input: compares, a blank line, success operations, a blank line,
//! failure operations, a blank line. Compares are `target("key") op "value"` read with Go's
//! `%q` rules; operations are put/get/del command lines split with etcdctl's quoting rules.

use std::io::{BufRead, Write};

use clap::Parser;
use conclave_client::{Compare, CompareInt, CompareValue, Txn, TxnOp};

use crate::commands::del::DelArgs;
use crate::commands::get::GetArgs;
use crate::commands::put::PutArgs;
use crate::context::bytes_os;
use crate::error::CtlError;
use crate::gofmt::{parse_int, quote, unquote};

/// etcdctl's prompts for `txn -i`.
pub const PROMPT_COMPARES: &str = "compares:";
pub const PROMPT_SUCCESS: &str = "success requests (get, put, del):";
pub const PROMPT_FAILURE: &str = "failure requests (get, put, del):";

/// Reads a whole transaction, printing the prompts to `prompt` when interactive.
pub fn read_txn<W: Write + ?Sized>(
    input: &mut dyn BufRead,
    mut prompt: Option<&mut W>,
) -> Result<Txn, CtlError> {
    let mut say = |text: &str| -> Result<(), CtlError> {
        if let Some(out) = prompt.as_mut() {
            writeln!(out, "{text}")?;
            out.flush()?;
        }
        Ok(())
    };
    say(PROMPT_COMPARES)?;
    let mut compares = Vec::new();
    while let Some(line) = next_line(input)? {
        compares.push(parse_compare(&line)?);
    }
    say(PROMPT_SUCCESS)?;
    let mut success = Vec::new();
    while let Some(line) = next_line(input)? {
        success.push(parse_op(&line)?);
    }
    say(PROMPT_FAILURE)?;
    let mut failure = Vec::new();
    while let Some(line) = next_line(input)? {
        failure.push(parse_op(&line)?);
    }
    Ok(Txn::new().when(compares).and_then(success).or_else(failure))
}

/// The next line, trimmed; `None` at the blank line that ends a section. Like etcdctl, input
/// that ends before that blank line (or mid-line) is an error: "EOF".
fn next_line(input: &mut dyn BufRead) -> Result<Option<Vec<u8>>, CtlError> {
    let mut line = Vec::new();
    let n = input
        .read_until(b'\n', &mut line)
        .map_err(|e| CtlError::invalid_input(e.to_string()))?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Err(CtlError::invalid_input("EOF"));
    }
    let trimmed = line.trim_ascii();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_vec()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Go's unicode.IsSpace for the ASCII range, which is all Sscanf's space skipping meets here.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// A cursor over a compare line, scanning it as Go's `fmt.Sscanf(s, "%q) %s %q", ...)`.
struct Scanner<'a> {
    rest: &'a [u8],
}

impl<'a> Scanner<'a> {
    fn skip_space(&mut self) {
        while let [b, tail @ ..] = self.rest {
            if !is_space(*b) {
                break;
            }
            self.rest = tail;
        }
    }

    /// `%q`: a double-quoted (escapes allowed) or back-quoted string.
    fn quoted(&mut self) -> Option<Vec<u8>> {
        self.skip_space();
        let end = match self.rest.first()? {
            b'"' => {
                let mut i = 1;
                loop {
                    match self.rest.get(i)? {
                        b'\\' => i += 2,
                        b'"' => break i + 1,
                        _ => i += 1,
                    }
                }
            }
            b'`' => 2 + self.rest.get(1..)?.iter().position(|&b| b == b'`')?,
            _ => return None,
        };
        let lit = self.rest.get(..end)?;
        let value = unquote(lit).ok()?;
        self.rest = self.rest.get(end..)?;
        Some(value)
    }

    /// A literal byte of the format, which must come next.
    fn literal(&mut self, b: u8) -> Option<()> {
        let (&first, tail) = self.rest.split_first()?;
        (first == b).then(|| self.rest = tail)
    }

    /// `%s`: a run of non-space bytes.
    fn word(&mut self) -> Option<Vec<u8>> {
        self.skip_space();
        let len = self
            .rest
            .iter()
            .position(|&b| is_space(b))
            .unwrap_or(self.rest.len());
        if len == 0 {
            return None;
        }
        let (word, tail) = self.rest.split_at(len);
        self.rest = tail;
        Some(word.to_vec())
    }
}

/// Parses one compare line, e.g. `mod("key1") > "0"` or `value("k") = "v"`, with etcdctl's
/// targets (`ver`/`version`, `c`/`create`, `m`/`mod`, `val`/`value`, `lease`, the lease in
/// hex) and operators (`=`, `!=`, `<`, `>`) and its error messages.
pub fn parse_compare(line: &[u8]) -> Result<Compare, CtlError> {
    let line_text = text(line);
    let malformed = || CtlError::invalid_input(format!("malformed comparison: {line_text}"));
    let Some(paren) = line.iter().position(|&b| b == b'(') else {
        return Err(malformed());
    };
    let (target, rest) = (&line[..paren], &line[paren + 1..]);

    let mut scan = Scanner { rest };
    let key = scan.quoted();
    let op = key.as_ref().and_then(|_| {
        scan.literal(b')')?;
        scan.word()
    });
    let value = op.as_ref().and_then(|_| scan.quoted());
    let (Some(key), Some(op), Some(value)) = (key.clone(), op.clone(), value) else {
        return Err(CtlError::invalid_input(format!(
            "malformed comparison: {line_text}; got {}({}) {} {}",
            text(target),
            quote(&key.unwrap_or_default()),
            text(&op.unwrap_or_default()),
            quote(b""),
        )));
    };

    let invalid = || CtlError::invalid_input(format!("invalid txn compare request: {line_text}"));
    let value_text = String::from_utf8(value.clone()).map_err(|_| invalid());
    let number = |base: u32| -> Result<i64, CtlError> {
        parse_int(&value_text.clone()?, base).map_err(|_| invalid())
    };
    let compare = match target {
        b"ver" | b"version" => int_compare(Compare::version(key), &op, number(10)?),
        b"c" | b"create" => int_compare(Compare::create_revision(key), &op, number(10)?),
        b"m" | b"mod" => int_compare(Compare::mod_revision(key), &op, number(10)?),
        b"lease" => int_compare(Compare::lease(key), &op, number(16)?),
        b"val" | b"value" => value_compare(Compare::value(key), &op, value),
        _ => {
            return Err(CtlError::invalid_input(format!(
                "malformed comparison: {line_text} (unknown target {})",
                text(target)
            )));
        }
    };
    // etcdctl panics on an unknown operator; a clear error is kinder.
    compare.ok_or_else(|| {
        CtlError::invalid_input(format!(
            "malformed comparison: {line_text} (unknown operator {})",
            text(&op)
        ))
    })
}

fn int_compare(c: CompareInt, op: &[u8], n: i64) -> Option<Compare> {
    Some(match op {
        b"=" => c.eq(n),
        b"!=" => c.ne(n),
        b">" => c.gt(n),
        b"<" => c.lt(n),
        _ => return None,
    })
}

fn value_compare(c: CompareValue, op: &[u8], v: Vec<u8>) -> Option<Compare> {
    Some(match op {
        b"=" => c.eq(v),
        b"!=" => c.ne(v),
        b">" => c.gt(v),
        b"<" => c.lt(v),
        _ => return None,
    })
}

/// Splits an operation line into arguments as etcdctl does: `"double quoted"` strings with Go
/// escapes, `'single quoted'` strings taken literally, and bare words; a quote that is never
/// closed is skipped.
pub fn argify(line: &[u8]) -> Result<Vec<Vec<u8>>, CtlError> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if is_space(b) {
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                let mut j = i + 1;
                let mut closed = None;
                while j < line.len() {
                    match line[j] {
                        b'\\' if j + 1 < line.len() && line[j + 1] != b'\n' => j += 2,
                        b'"' => {
                            closed = Some(j);
                            break;
                        }
                        b'\n' | b'\\' => break,
                        _ => j += 1,
                    }
                }
                match closed {
                    Some(end) => {
                        let arg = unquote(&line[i..=end])
                            .map_err(|_| CtlError::invalid_input("invalid syntax"))?;
                        args.push(arg);
                        i = end + 1;
                    }
                    None => i += 1,
                }
            }
            b'\'' => match line[i + 1..].iter().position(|&c| c == b'\'') {
                Some(len) => {
                    args.push(line[i + 1..i + 1 + len].to_vec());
                    i += len + 2;
                }
                None => i += 1,
            },
            _ => {
                let len = line[i..]
                    .iter()
                    .position(|&c| is_space(c))
                    .unwrap_or(line.len() - i);
                args.push(line[i..i + len].to_vec());
                i += len;
            }
        }
    }
    Ok(args)
}

/// The operations a txn line may hold: etcdctl's put, get and del with their flags.
#[derive(Parser, Debug)]
#[command(no_binary_name = true, infer_subcommands = true)]
enum TxnOpLine {
    Put(PutArgs),
    Get(GetArgs),
    Del(DelArgs),
}

/// Parses one operation line, e.g. `put key1 "overwrote-key1"`, `get k --prefix`, `del k`.
pub fn parse_op(line: &[u8]) -> Result<TxnOp, CtlError> {
    let line_text = text(line);
    let args = argify(line)?;
    if args.len() < 2 {
        return Err(CtlError::invalid_input(format!(
            "invalid txn compare request: {line_text}"
        )));
    }
    let parsed = TxnOpLine::try_parse_from(args.into_iter().map(bytes_os))
        .map_err(|_| CtlError::invalid_input(format!("invalid txn request: {line_text}")))?;
    Ok(match parsed {
        TxnOpLine::Put(a) => {
            let (key, value, opts) = a.to_op(None)?;
            TxnOp::put(key, value, opts)
        }
        TxnOpLine::Get(a) => {
            let (key, opts) = a.to_op()?;
            TxnOp::get(key, opts)
        }
        TxnOpLine::Del(a) => {
            let (key, opts) = a.to_op()?;
            TxnOp::delete(key, opts)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit;
    use conclave_client::proto::etcdserverpb::{
        Compare as PbCompare, RequestOp,
        compare::{CompareResult, CompareTarget, TargetUnion},
        request_op::Request,
    };

    fn compare(line: &str) -> PbCompare {
        match parse_compare(line.as_bytes()) {
            Ok(c) => c.into_inner(),
            Err(e) => panic!("{line}: {e:?}"),
        }
    }

    fn compare_err(line: &str) -> String {
        match parse_compare(line.as_bytes()) {
            Ok(c) => panic!("{line} parsed as {c:?}"),
            Err(e) => {
                assert_eq!(e.code, exit::INVALID_INPUT);
                e.message.unwrap_or_default()
            }
        }
    }

    fn op(line: &str) -> RequestOp {
        match parse_op(line.as_bytes()) {
            Ok(op) => op.into_inner(),
            Err(e) => panic!("{line}: {e:?}"),
        }
    }

    #[test]
    fn compares_cover_every_target() {
        let c = compare(r#"mod("key1") > "0""#);
        assert_eq!(c.key, b"key1");
        assert_eq!(c.target, CompareTarget::Mod as i32);
        assert_eq!(c.result, CompareResult::Greater as i32);
        assert_eq!(c.target_union, Some(TargetUnion::ModRevision(0)));

        let c = compare(r#"value("k") = "v""#);
        assert_eq!(c.target_union, Some(TargetUnion::Value(b"v".to_vec())));
        assert_eq!(c.result, CompareResult::Equal as i32);

        let c = compare(r#"ver("k") != "3""#);
        assert_eq!(c.target_union, Some(TargetUnion::Version(3)));
        assert_eq!(c.result, CompareResult::NotEqual as i32);

        let c = compare(r#"c("k") < "10""#);
        assert_eq!(c.target_union, Some(TargetUnion::CreateRevision(10)));
        assert_eq!(c.result, CompareResult::Less as i32);

        let c = compare(r#"lease("k") = "1f""#);
        assert_eq!(c.target_union, Some(TargetUnion::Lease(31)));

        let c = compare(r#"val("k") = """#);
        assert_eq!(c.target_union, Some(TargetUnion::Value(Vec::new())));
    }

    #[test]
    fn compares_follow_go_quoting() {
        let c = compare(r#"value( "a \"b\"\x41\n") = `raw\n`"#);
        assert_eq!(c.key, b"a \"b\"A\n");
        assert_eq!(c.target_union, Some(TargetUnion::Value(b"raw\\n".to_vec())));
        let c = compare(r#"value("k")    =    "v"  trailing"#);
        assert_eq!(c.key, b"k");
    }

    #[test]
    fn malformed_compares_report_like_etcdctl() {
        assert_eq!(compare_err("nothing"), "malformed comparison: nothing");
        assert_eq!(
            compare_err(r#"value(k1) = "nope""#),
            r#"malformed comparison: value(k1) = "nope"; got value("")  """#
        );
        assert_eq!(
            compare_err(r#"version("k") = 0"#),
            r#"malformed comparison: version("k") = 0; got version("k") = """#
        );
        assert_eq!(
            compare_err(r#"value("k" ) = "v""#),
            r#"malformed comparison: value("k" ) = "v"; got value("k")  """#
        );
        assert_eq!(
            compare_err(r#"valu("k1") = "nope""#),
            r#"malformed comparison: valu("k1") = "nope" (unknown target valu)"#
        );
        assert_eq!(
            compare_err(r#"version("k1") = "x""#),
            r#"invalid txn compare request: version("k1") = "x""#
        );
        assert_eq!(
            compare_err(r#"value("k1") >= "x""#),
            r#"malformed comparison: value("k1") >= "x" (unknown operator >=)"#
        );
    }

    #[test]
    fn argify_follows_etcdctl_quoting() {
        let args = |s: &str| argify(s.as_bytes()).expect("argify");
        let strs = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(args(r#"put k "a b""#), strs(&["put", "k", "a b"]));
        assert_eq!(args(r#"put k 'a "b" c'"#), strs(&["put", "k", "a \"b\" c"]));
        assert_eq!(args(r#"put "\x41\u00e9" v"#), strs(&["put", "Aé", "v"]));
        assert_eq!(args(r#"put a"b c"d"#), strs(&["put", "a\"b", "c\"d"]));
        assert_eq!(args(r#"put "unclosed x"#), strs(&["put", "unclosed", "x"]));
        assert_eq!(args("  get\tk  "), strs(&["get", "k"]));
        assert_eq!(args(r#"put k """#), strs(&["put", "k", ""]));
        assert!(argify(br#"put k "\q""#).is_err());
    }

    #[test]
    fn ops_are_put_get_del_with_flags() {
        match op(r#"put key1 "overwrote-key1" --prev-kv"#).request {
            Some(Request::RequestPut(p)) => {
                assert_eq!(
                    (p.key.as_slice(), p.value.as_slice()),
                    (&b"key1"[..], &b"overwrote-key1"[..])
                );
                assert!(p.prev_kv);
            }
            other => panic!("{other:?}"),
        }
        match op("get k --prefix --limit 2").request {
            Some(Request::RequestRange(r)) => {
                assert_eq!((r.range_end.as_slice(), r.limit), (&b"l"[..], 2));
            }
            other => panic!("{other:?}"),
        }
        match op("del k z").request {
            Some(Request::RequestDeleteRange(d)) => assert_eq!(d.range_end, b"z"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(op("g k").request, Some(Request::RequestRange(_))));
    }

    #[test]
    fn bad_ops_report_like_etcdctl() {
        let err = |line: &str| parse_op(line.as_bytes()).err();
        assert_eq!(
            err("put"),
            Some(CtlError::invalid_input("invalid txn compare request: put"))
        );
        assert_eq!(
            err("foo k1"),
            Some(CtlError::invalid_input("invalid txn request: foo k1"))
        );
        assert_eq!(
            err("get k --nope"),
            Some(CtlError::invalid_input("invalid txn request: get k --nope"))
        );
        assert_eq!(
            err("get k --prefix --from-key").map(|e| e.code),
            Some(exit::BAD_ARGS)
        );
    }

    #[test]
    fn whole_txn_reads_three_sections() {
        let input = "value(\"k1\") = \"v1\"\nversion(\"k2\") = \"1\"\n\nput k1 \"new v\"\nget k2\n\nput x y\n\n";
        let mut prompts = Vec::new();
        let txn = read_txn(&mut input.as_bytes(), Some(&mut prompts));
        let req = match txn {
            Ok(t) => t.into_request(),
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(
            (req.compare.len(), req.success.len(), req.failure.len()),
            (2, 2, 1)
        );
        assert_eq!(
            String::from_utf8_lossy(&prompts),
            "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n"
        );
    }

    #[test]
    fn txn_input_must_end_with_a_blank_line() {
        for input in [
            "value(\"k\") = \"v\"\n",
            "\nput a b\n\nput c d\n",
            "\n\n",
            "\n\nput a b",
        ] {
            assert_eq!(
                read_txn(&mut input.as_bytes(), None::<&mut Vec<u8>>).err(),
                Some(CtlError::invalid_input("EOF")),
                "{input:?}"
            );
        }
        assert!(read_txn(&mut "\n\n\n".as_bytes(), None::<&mut Vec<u8>>).is_ok());
    }
}
