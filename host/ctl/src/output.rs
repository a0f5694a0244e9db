//! Printing responses in the three formats: `simple` (etcdctl's plain lines), `json`
//! (see [`crate::json`]) and `table` (only for the endpoint commands, as in etcdctl).

use std::io::{self, Write};

use conclave_client::proto::etcdserverpb::{
    DeleteRangeResponse, PutResponse, RangeResponse, TxnResponse, response_op::Response,
};
use conclave_client::proto::mvccpb::KeyValue;

use crate::error::CtlError;
use crate::json;

/// The `-w` output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Json,
    Table,
}

impl Format {
    /// Parses `-w`; etcdctl's `fields` and `protobuf` are not offered.
    pub fn parse(s: &str) -> Result<Format, CtlError> {
        match s {
            "simple" => Ok(Format::Simple),
            "json" => Ok(Format::Json),
            "table" => Ok(Format::Table),
            _ => Err(CtlError::bad_feature("unsupported output format")),
        }
    }

    /// The KV commands have no table form; etcdctl refuses it the same way.
    pub fn require_not_table(self) -> Result<(), CtlError> {
        if self == Format::Table {
            Err(CtlError::bad_feature(
                "table not supported as output format",
            ))
        } else {
            Ok(())
        }
    }
}

/// Prints the KV responses.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: Format,
    /// `--hex`: keys and values as `\xNN` escapes.
    pub hex: bool,
    /// `--print-value-only`.
    pub value_only: bool,
    /// `--count-only`: the simple format prints the count.
    pub count_only: bool,
}

impl Printer {
    pub fn new(format: Format, hex: bool) -> Self {
        Self {
            format,
            hex,
            value_only: false,
            count_only: false,
        }
    }

    fn bytes(&self, out: &mut dyn Write, bytes: &[u8]) -> io::Result<()> {
        if self.hex {
            for b in bytes {
                write!(out, "\\x{b:02x}")?;
            }
        } else {
            out.write_all(bytes)?;
        }
        writeln!(out)
    }

    fn kv(&self, out: &mut dyn Write, kv: &KeyValue) -> io::Result<()> {
        if !self.value_only {
            self.bytes(out, &kv.key)?;
        }
        self.bytes(out, &kv.value)
    }

    pub fn get(&self, out: &mut dyn Write, r: &RangeResponse) -> io::Result<()> {
        match self.format {
            Format::Json => writeln!(out, "{}", json::range(r)),
            _ => {
                if self.count_only {
                    return writeln!(out, "{}", r.count);
                }
                r.kvs.iter().try_for_each(|kv| self.kv(out, kv))
            }
        }
    }

    pub fn put(&self, out: &mut dyn Write, r: &PutResponse) -> io::Result<()> {
        match self.format {
            Format::Json => writeln!(out, "{}", json::put(r)),
            _ => {
                writeln!(out, "OK")?;
                match &r.prev_kv {
                    Some(kv) => self.kv(out, kv),
                    None => Ok(()),
                }
            }
        }
    }

    pub fn delete(&self, out: &mut dyn Write, r: &DeleteRangeResponse) -> io::Result<()> {
        match self.format {
            Format::Json => writeln!(out, "{}", json::delete(r)),
            _ => {
                writeln!(out, "{}", r.deleted)?;
                r.prev_kvs.iter().try_for_each(|kv| self.kv(out, kv))
            }
        }
    }

    pub fn txn(&self, out: &mut dyn Write, r: &TxnResponse) -> io::Result<()> {
        if self.format == Format::Json {
            return writeln!(out, "{}", json::txn(r));
        }
        writeln!(out, "{}", if r.succeeded { "SUCCESS" } else { "FAILURE" })?;
        // Inside a txn the printer is etcdctl's plain one: no value-only, no count line.
        let inner = Printer::new(self.format, self.hex);
        for op in &r.responses {
            writeln!(out)?;
            match &op.response {
                Some(Response::ResponseRange(r)) => inner.get(out, r)?,
                Some(Response::ResponsePut(r)) => inner.put(out, r)?,
                Some(Response::ResponseDeleteRange(r)) => inner.delete(out, r)?,
                Some(Response::ResponseTxn(r)) => inner.txn(out, r)?,
                None => writeln!(out, "unexpected response {op:?}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_client::proto::etcdserverpb::ResponseOp;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        }
    }

    fn printed(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        assert!(f(&mut out).is_ok());
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn simple_get_prints_key_and_value_lines() {
        let r = RangeResponse {
            kvs: vec![kv("a", "1"), kv("b", "")],
            count: 2,
            ..Default::default()
        };
        let p = Printer::new(Format::Simple, false);
        assert_eq!(printed(|o| p.get(o, &r)), "a\n1\nb\n\n");
        let values = Printer {
            value_only: true,
            ..p
        };
        assert_eq!(printed(|o| values.get(o, &r)), "1\n\n");
        let counts = Printer {
            count_only: true,
            ..p
        };
        assert_eq!(printed(|o| counts.get(o, &r)), "2\n");
        let hex = Printer::new(Format::Simple, true);
        assert_eq!(printed(|o| hex.get(o, &r)), "\\x61\n\\x31\n\\x62\n\n");
    }

    #[test]
    fn simple_put_and_delete_match_etcdctl() {
        let p = Printer::new(Format::Simple, false);
        let put = PutResponse {
            prev_kv: Some(kv("foo", "bar")),
            ..Default::default()
        };
        assert_eq!(printed(|o| p.put(o, &put)), "OK\nfoo\nbar\n");
        let del = DeleteRangeResponse {
            deleted: 2,
            prev_kvs: vec![kv("a", "1")],
            ..Default::default()
        };
        assert_eq!(printed(|o| p.delete(o, &del)), "2\na\n1\n");
    }

    #[test]
    fn simple_txn_separates_responses_with_blank_lines() {
        let r = TxnResponse {
            succeeded: true,
            responses: vec![
                ResponseOp {
                    response: Some(Response::ResponsePut(PutResponse::default())),
                },
                ResponseOp {
                    response: Some(Response::ResponseRange(RangeResponse {
                        kvs: vec![kv("k2", "v2")],
                        ..Default::default()
                    })),
                },
                ResponseOp {
                    response: Some(Response::ResponseDeleteRange(DeleteRangeResponse {
                        deleted: 1,
                        ..Default::default()
                    })),
                },
            ],
            ..Default::default()
        };
        let p = Printer::new(Format::Simple, false);
        assert_eq!(printed(|o| p.txn(o, &r)), "SUCCESS\n\nOK\n\nk2\nv2\n\n1\n");
        let failed = TxnResponse::default();
        assert_eq!(printed(|o| p.txn(o, &failed)), "FAILURE\n");
    }
}
