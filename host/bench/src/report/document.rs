//! docs/BENCHMARKS.md as `scripts/compare-etcd` writes it: the machine, then every load's table
//! in the order they ran, with the prose that says what each measured and the commands that
//! ran it.

use std::fmt::Write as _;

use super::manifest::{CONCLAVE, Manifest};
use super::results::Results;
use super::table::{Columns, Figure, Goal, Row, Table, mib, ratio, show_ratio};
use crate::defrag_load::DefragReport;
use crate::procstat::ProcStat;
use crate::rollup_load::RollupReport;
use crate::rollup_probe::RollupProbeReport;
use crate::stats::Report;
use crate::watch_load::WatchReport;
use crate::write_probe::ProbeReport;

/// Heads the goal column: the goals are the ones issue 7 set against etcd 3.4.
const GOALS: &str = "goal (issue 7)";

/// The markdown text, built section by section.
struct Doc {
    out: String,
}

impl Doc {
    fn heading(&mut self, level: usize, text: &str) {
        let _ = write!(self.out, "{} {text}\n\n", "#".repeat(level));
    }

    fn para(&mut self, text: &str) {
        self.out.push_str(text);
        self.out.push_str("\n\n");
    }

    fn code<'a>(&mut self, lines: impl IntoIterator<Item = &'a str>) {
        self.out.push_str("```sh\n");
        for line in lines {
            self.out.push_str(line);
            self.out.push('\n');
        }
        self.out.push_str("```\n\n");
    }

    fn table(&mut self, table: &Table<'_>) {
        self.out.push_str(&table.render());
        self.out.push('\n');
    }
}

/// The whole report but its last section ("Before and after, by change"), which the caller
/// keeps from the previous report.
pub fn write(m: &Manifest, r: &Results<'_>) -> anyhow::Result<String> {
    let columns = Columns {
        systems: m
            .baselines
            .iter()
            .map(|b| format!("etcd {}", b.api_version))
            .chain([CONCLAVE.to_string()])
            .collect(),
        ratios: m
            .baselines
            .iter()
            .map(|b| match m.baselines.len() {
                1 => "conclave/etcd".to_string(),
                _ => format!("conclave/etcd {}", b.api_version),
            })
            .collect(),
        // Goals are judged against the newest baseline, the one people would pick instead.
        judged: m.baselines.len().saturating_sub(1),
        smoke: m.is_smoke(),
    };
    let mut w = Writer {
        m,
        r,
        columns,
        doc: Doc { out: String::new() },
    };
    w.preamble();
    w.single_member()?;
    w.plugins()?;
    w.three_members()?;
    w.large_data()?;
    Ok(w.doc.out)
}

struct Writer<'a> {
    m: &'a Manifest,
    r: &'a Results<'a>,
    columns: Columns,
    doc: Doc,
}

impl Writer<'_> {
    fn preamble(&mut self) {
        let m = self.m;
        let d = &mut self.doc;
        d.heading(1, "Benchmarks: conclave beside etcd");
        d.para(
            "Written by `scripts/compare-etcd` (do not edit by hand: run the script again), except the last\n\
             section, \"Before and after, by change\", which `scripts/compare-builds` tables are added to and\n\
             the script keeps. Both servers ran on this machine in the same run, each load against both,\n\
             alternating which went first.",
        );
        if m.is_smoke() {
            d.para(&format!(
                "> **Smoke run (BENCH_SCALE={}): every --total was shrunk, so these figures only show that\n\
                 > the plumbing works. They are not a comparison. Run `scripts/compare-etcd` for real figures.**",
                m.scale
            ));
        }
        d.heading(2, "Machine and versions");
        let mc = &m.machine;
        let mut facts = vec![
            format!("- Date: {}", mc.date),
            format!("- CPU: {}, {} cores (nproc)", mc.cpu, mc.cores),
            format!("- Memory: {:.1} GiB (MemTotal)", mc.memory_gib),
            format!("- Kernel: {}; data dirs on {}", mc.kernel, mc.filesystem),
        ];
        for b in &m.baselines {
            facts.push(format!(
                "- etcd: {} (`{}`), reporting API version {}",
                b.version, b.binary, b.api_version
            ));
        }
        facts.push(format!(
            "- conclave: {}, git {}, release build",
            m.conclave.version, m.conclave.git
        ));
        facts.push(
            "- Load generator: `conclave-bench` (release build, etcd gRPC API), on the same machine:\n  \
             client and server share the cores."
                .to_string(),
        );
        facts.push(format!(
            "- Servers up to report written: {} s (BENCH_SCALE {}; the build and any apt step not counted).",
            mc.elapsed_secs, m.scale
        ));
        d.para(&facts.join("\n"));
        d.heading(2, "Settings");
        d.para(
            "Keys are 8 bytes, values 256 random bytes, as in etcd's documented benchmark. Latency is per\n\
             successful request, measured by the client; throughput is successful requests per second of\n\
             wall time. Both systems fsync their log before acknowledging a write (conclave fsyncs each\n\
             batch of appends once). etcd runs with its defaults (snapshot-count 100000, 2 GiB backend\n\
             quota, 100 ms heartbeat, 1000 ms election timeout), conclave with the same timings and\n\
             snapshot-count.",
        );
    }

    /// A load's table as most loads have it: the rows `rows` adds, the errors, each round's
    /// throughput when the load ran in rounds, and the commands of `commands`.
    fn load_table(
        &mut self,
        id: &str,
        commands: &[&str],
        rows: impl FnOnce(&mut Table<'_>, &[Report]),
    ) -> anyhow::Result<()> {
        let reports = self.r.loads(id)?;
        let mut t = Table::new(&self.columns, GOALS);
        rows(&mut t, &reports);
        t.text_row("errors", reports.iter().map(|r| r.errors.to_string()));
        self.doc.table(&t);
        self.error_messages(&reports);
        if self.m.rounds.contains_key(id) {
            self.rounds_line(id)?;
        }
        self.doc.code(self.m.commands_for(commands));
        Ok(())
    }

    fn error_messages(&mut self, reports: &[Report]) {
        if reports.iter().all(|r| r.errors == 0) {
            return;
        }
        let said: Vec<String> = self
            .m
            .systems()
            .iter()
            .zip(reports)
            .map(|(system, r)| {
                let messages = serde_json::to_string(&r.error_messages).unwrap_or_default();
                format!("{system} `{messages}`")
            })
            .collect();
        self.doc
            .para(&format!("Error messages: {}.", said.join("; ")));
    }

    fn rounds_line(&mut self, id: &str) -> anyhow::Result<()> {
        let mut parts = Vec::new();
        for system in self.m.systems() {
            let each: Vec<String> = self
                .r
                .rounds(id, system)?
                .iter()
                .map(|r| format!("{:.0}", r.throughput))
                .collect();
            parts.push(format!("{system} {}", each.join(", ")));
        }
        self.doc.para(&format!(
            "Throughput of each round in ops/s, in the order they ran (each round alternates which \
             system goes first; the table shows the median round of each): {}.",
            parts.join("; ")
        ));
        Ok(())
    }

    fn single_member(&mut self) -> anyhow::Result<()> {
        let m = self.m;
        let n = &m.counts;
        self.doc.heading(2, "Single member");
        self.doc.para(
            "One member each, fresh data dirs on the same disk, both running throughout (the idle one\n\
             only ticks).",
        );
        self.doc.code(m.servers.single.iter().map(String::as_str));

        self.doc.heading(
            3,
            &format!(
                "Put latency, 1 client (sequential keys, {} puts)",
                n.put_latency
            ),
        );
        self.load_table("put-latency", &["put-latency"], |t, r| {
            t.row(
                r,
                Row::ms("p50 latency", |r: &Report| r.latency_ms.p50).goal(1.0),
            );
            t.row(
                r,
                Row::ms("p99 latency", |r: &Report| r.latency_ms.p99).goal(1.0),
            );
            t.row(r, Row::ms("p99.9 latency", |r| r.latency_ms.p999));
            t.row(r, Row::rate("throughput", |r| r.throughput));
        })?;

        self.doc.heading(
            3,
            &format!(
                "Put throughput, 100 clients over 10 connections ({} puts)",
                n.put_throughput
            ),
        );
        self.load_table("put-throughput", &["put-throughput"], |t, r| {
            let throughput = Row::rate("throughput", |r: &Report| r.throughput);
            t.row(r, throughput.goal_noted(1.5, "set for 3 members"));
            latency_rows(t, r);
        })?;

        self.doc.heading(
            3,
            &format!(
                "Linearizable range, one key, 100 clients over 10 connections ({} ranges)",
                n.range
            ),
        );
        // Both stores hold keys 0.. of a 100000-key space after the put loads.
        let stored = n.put_latency.max(n.put_throughput).min(100_000);
        self.doc.para(&format!(
            "After the put loads above, so each store holds {stored} keys; every request reads the same key."
        ));
        self.load_table("range-linearizable", &["range-linearizable"], |t, r| {
            t.row(
                r,
                Row::rate("throughput", |r: &Report| r.throughput).goal(1.5),
            );
            latency_rows(t, r);
        })?;

        self.doc.heading(
            3,
            &format!(
                "Serializable range, one key, 100 clients over 10 connections ({} ranges)",
                n.range
            ),
        );
        self.load_table("range-serializable", &["range-serializable"], |t, r| {
            t.row(
                r,
                Row::rate("throughput", |r: &Report| r.throughput).goal(2.0),
            );
            latency_rows(t, r);
        })?;

        self.doc.heading(
            3,
            &format!(
                "Watch latency: 10 watchers on one prefix, {} puts at 200/s",
                n.watch
            ),
        );
        self.doc.para(
            "From a put being sent to a watcher receiving its event (the clock is the same machine's).",
        );
        self.watch_latency("watch-latency")?;

        self.doc
            .heading(3, "Watch fan-out: one put to 10,000 watchers on one prefix");
        self.doc.para(
            "10,000 watch streams over 100 connections, then one put: the time until the last\n\
             watcher has the event, and until half of them have it.",
        );
        let fanout: Vec<WatchReport> = self.r.each("watch-fanout")?;
        let mut t = Table::new(&self.columns, GOALS);
        t.row(
            &fanout,
            Row::ms("to every watcher", |r| r.all_watchers_ms.max),
        );
        t.row(
            &fanout,
            Row::ms("to half the watchers", |r| r.latency_ms.p50),
        );
        t.row(
            &fanout,
            Row::secs("setting up the watchers", |r| r.setup_secs),
        );
        self.doc.table(&t);
        self.doc.code(m.commands_for(&["watch-fanout"]));

        self.doc.heading(
            3,
            &format!(
                "Lease keep-alive: 100 clients, each its own lease and stream ({} keep-alives)",
                n.keepalive
            ),
        );
        self.load_table("lease-keepalive", &["lease-keepalive"], |t, r| {
            t.row(r, Row::rate("throughput", |r| r.throughput));
            latency_rows(t, r);
        })?;

        self.doc.heading(
            3,
            &format!(
                "Lock cycles under contention: 8 clients, one lock ({} acquire+release cycles)",
                n.lock
            ),
        );
        self.doc.para(
            "etcd's v3lock service on both: each client acquires the lock under its own lease and\n\
             releases it, again and again; with one lock, every cycle is a hand-over.",
        );
        self.load_table("lock-cycles", &["lock-cycles"], lock_rows)?;

        self.doc.heading(
            3,
            &format!(
                "Election failover: the leader stops renewing its 2 s lease ({} rounds)",
                n.elections
            ),
        );
        self.doc.para(
            "etcd's v3election service on both: a leader campaigns under a 2 s lease it keeps alive,\n\
             a candidate campaigns behind it, then the leader stops renewing (as a killed process\n\
             would): the time until the candidate leads. The TTL bounds it from below.",
        );
        self.load_table("election-failover", &["election-failover"], election_rows)?;

        self.doc.heading(3, "Memory and disk after the loads above");
        self.doc.para(
            "Resident memory (VmRSS) and data dir size of each server after all the loads above. The\n\
             goal of at most 0.5x is set for 1M x 1 KiB keys (see \"Large data\" below), so none is judged here.\n\
             Disk is what the files occupy (as `du` counts); etcd preallocates 64 MiB WAL segments.",
        );
        let stats: Vec<ProcStat> = self.r.each("stat")?;
        let mut t = Table::new(&self.columns, GOALS);
        stat_rows(&mut t, &stats, None);
        self.doc.table(&t);
        self.doc.code([m.stat_command.as_str()]);

        self.doc.heading(
            3,
            &format!(
                "Put latency while defragmenting ({} keys of 1 KiB garbage; 10 clients, 15 s)",
                n.garbage
            ),
        );
        self.doc.para(
            "The garbage is written, deleted and compacted first, so that the defragment has\n\
             something to rewrite; a third of the way into 15 s of puts, one Defragment call. etcd\n\
             rewrites its bbolt file and holds writes meanwhile (etcd #9222); conclave major-compacts\n\
             its LSM beside the live tables. The slowest put shows the stall.",
        );
        let defrag: Vec<DefragReport> = self.r.each("defrag-under-writes")?;
        let mut t = Table::new(&self.columns, GOALS);
        t.row(&defrag, Row::ms("defragment took", |r| r.defrag_ms));
        t.row(&defrag, Row::ms("slowest put", |r| r.puts.latency_ms.max));
        t.row(&defrag, Row::ms("p99.9 put", |r| r.puts.latency_ms.p999));
        t.row(&defrag, Row::rate("puts per second", |r| r.puts.throughput));
        t.text_row("errors", defrag.iter().map(|r| r.puts.errors.to_string()));
        self.doc.table(&t);
        self.doc.code(m.commands_for(&["defrag-under-writes"]));
        Ok(())
    }

    fn watch_latency(&mut self, id: &str) -> anyhow::Result<()> {
        let watch: Vec<WatchReport> = self.r.each(id)?;
        let mut t = Table::new(&self.columns, GOALS);
        t.row(&watch, Row::ms("p50 latency", |r| r.latency_ms.p50));
        t.row(&watch, Row::ms("p99 latency", |r| r.latency_ms.p99));
        t.row(&watch, Row::ms("max latency", |r| r.latency_ms.max));
        self.doc.table(&t);
        self.doc.code(self.m.commands_for(&[id]));
        Ok(())
    }

    fn plugins(&mut self) -> anyhow::Result<()> {
        let m = self.m;
        let n = &m.counts;
        let p = &m.plugins;
        let baseline = self.columns.systems.first().cloned().unwrap_or_default();
        self.doc.heading(2, "Plugins (conclave only)");
        self.doc.para(
            "etcd has no plugins: the etcd column is its figure for the same plain load from this run,\n\
             where there is one. The rules run on the single member above, after the loads above.",
        );
        self.doc.code(p.deploys.iter().map(String::as_str));

        self.doc.heading(3, "Host overhead per input, in process");
        self.doc.para(
            "`noop` only counts its inputs: its time per KV event is the host's part (goal: under 1 µs).\n\
             `rollup` (100 series, six aggregation types) is one rule's ceiling on one core.",
        );
        self.doc.para(p.overhead_table.trim_end());
        self.doc.code([p.overhead_command.as_str()]);

        self.doc.heading(
            3,
            &format!(
                "Samples through rollup via Ingest: 8 clients, batches of 1000 ({} batches)",
                n.ingest
            ),
        );
        self.doc.para(
            "Sent to the Ingest service (not through Raft); end to end is from the first request until\n\
             the rule's rollups (1 s windows, 200 ms lateness) count every sample, flushed through Raft.\n\
             Goal: 500k samples/s.",
        );
        let ingest: RollupReport = self.r.file("rollup-ingest.conclave.json")?;
        self.doc.para(&format!(
            "| metric | conclave | goal (issue 5) |\n|---|---:|---|\n\
             | samples/s accepted | {:.0} | |\n\
             | samples/s end to end | {:.0} | >= 500000 |\n\
             | samples counted / sent | {} / {} | every one |\n\
             | p50 batch latency | {:.3} ms | |\n\
             | p99 batch latency | {:.3} ms | |",
            ingest.samples_per_sec_sent,
            ingest.end_to_end_samples_per_sec,
            ingest.counted,
            ingest.samples,
            ingest.send.latency_ms.p50,
            ingest.send.latency_ms.p99
        ));
        self.doc.code(m.commands_for(&["rollup-ingest"]));

        self.doc.heading(
            3,
            &format!(
                "Samples through rollup via KV puts: 100 clients over 10 connections ({} puts)",
                n.rollup_puts
            ),
        );
        self.doc.para(
            "Each sample a put through Raft; beside it, etcd's plain put throughput at 100 clients from\n\
             the table above (etcd has no rule to feed).",
        );
        let plain: Vec<Report> = self.r.loads("put-throughput")?;
        let etcd_puts = plain.first().map_or(0.0, |r| r.throughput);
        let put: RollupReport = self.r.file("rollup-put.conclave.json")?;
        self.doc.para(&format!(
            "| metric | {baseline}, plain puts | conclave, puts + rollup | conclave/etcd |\n|---|---:|---:|---:|\n\
             | puts/s | {etcd_puts:.0} | {:.0} | {} |\n\
             | samples/s end to end | | {:.0} | |\n\
             | samples counted / sent | | {} / {} | |",
            put.send.throughput,
            show_ratio(ratio(etcd_puts, put.send.throughput)),
            put.end_to_end_samples_per_sec,
            put.counted,
            put.samples
        ));
        self.doc.code(m.commands_for(&["rollup-put"]));

        self.doc.heading(
            3,
            &format!(
                "Put latency, 1 client, with a hostile plugin loaded ({} puts)",
                n.put_latency
            ),
        );
        self.doc.para(&format!(
            "`loop-forever` gets every one of these puts and never returns: each call is cut at its\n\
             100 ms deadline, the plugin is marked failed and restarted with backoff (it failed {} times\n\
             here). Beside it, the same load without plugins from the first table (its keys are\n\
             `/loop/` and the same 8 bytes).",
            p.hostile_restarts
        ));
        let plain: Vec<Report> = self.r.loads("put-latency")?;
        let hostile: Report = self.r.file("put-latency-hostile.conclave.json")?;
        let (Some(etcd), Some(none)) = (plain.first(), plain.last()) else {
            anyhow::bail!("put-latency has no results");
        };
        let mut table = format!(
            "| metric | {baseline} | conclave, no plugins | conclave, hostile plugin | hostile/none |\n\
             |---|---:|---:|---:|---:|\n"
        );
        let quantiles: [(&str, Figure<Report>); 3] = [
            ("p50", |r| r.latency_ms.p50),
            ("p99", |r| r.latency_ms.p99),
            ("p999", |r| r.latency_ms.p999),
        ];
        for (name, q) in quantiles {
            let _ = writeln!(
                table,
                "| {name} latency | {:.3} ms | {:.3} ms | {:.3} ms | {} |",
                q(etcd),
                q(none),
                q(&hostile),
                show_ratio(ratio(q(none), q(&hostile)))
            );
        }
        let _ = write!(
            table,
            "| errors | {} | {} | {} | |",
            etcd.errors, none.errors, hostile.errors
        );
        self.doc.para(&table);
        self.doc.code(m.commands_for(&["put-latency-hostile"]));
        Ok(())
    }

    fn three_members(&mut self) -> anyhow::Result<()> {
        let m = self.m;
        let n = &m.counts;
        self.doc.heading(2, "Three members");
        self.doc.para(
            "Three members each on loopback (all six processes and the load generator share the machine),\n\
             started together, both clusters running throughout. etcd with its defaults; conclave with\n\
             snapshot-count 100000 like etcd 3.4, and peer certificates from `conclavectl certs init`.\n\
             The 1-client load writes to the leader (etcd's documented \"write to leader\" case); the\n\
             others spread their connections over all three members, so two thirds of the writes reach a\n\
             follower, which forwards them to the leader.",
        );
        self.doc.code(m.servers.cluster.iter().map(String::as_str));

        self.doc.heading(
            3,
            &format!(
                "Put latency, 1 client, to the leader (sequential keys, {} puts)",
                n.put_latency
            ),
        );
        self.load_table("c3-put-latency", &["c3-put-latency"], |t, r| {
            t.row(
                r,
                Row::ms("p50 latency", |r: &Report| r.latency_ms.p50).goal(1.0),
            );
            t.row(r, Row::ms("p99 latency", |r| r.latency_ms.p99));
            t.row(r, Row::rate("throughput", |r| r.throughput));
        })?;

        let throughput_goal = |goal: f64| {
            move |t: &mut Table<'_>, r: &[Report]| {
                t.row(
                    r,
                    Row::rate("throughput", |r: &Report| r.throughput).goal(goal),
                );
                latency_rows(t, r);
            }
        };
        self.doc.heading(
            3,
            &format!(
                "Put throughput, 100 clients over 10 connections, all members ({} puts)",
                n.put_throughput
            ),
        );
        self.load_table("c3-put-100", &["c3-put-100"], throughput_goal(1.5))?;
        self.doc.heading(
            3,
            &format!(
                "Put throughput, 1000 clients over 100 connections, all members ({} puts)",
                n.put_1000
            ),
        );
        self.load_table("c3-put-1000", &["c3-put-1000"], throughput_goal(1.5))?;
        self.doc.heading(
            3,
            &format!(
                "Linearizable range, one key, 100 clients over 10 connections, all members ({} ranges)",
                n.range
            ),
        );
        self.load_table(
            "c3-range-linearizable",
            &["c3-range-linearizable"],
            throughput_goal(1.5),
        )?;
        self.doc.heading(
            3,
            &format!(
                "Serializable range, one key, 100 clients over 10 connections, all members ({} ranges)",
                n.range
            ),
        );
        self.load_table(
            "c3-range-serializable",
            &["c3-range-serializable"],
            throughput_goal(2.0),
        )?;

        self.doc.heading(
            3,
            &format!(
                "Watch latency, all members: 10 watchers on one prefix, {} puts at 200/s",
                n.watch
            ),
        );
        self.watch_latency("c3-watch-latency")?;

        self.doc.heading(
            3,
            &format!(
                "Lease keep-alive, all members: 100 clients, each its own lease and stream ({} keep-alives)",
                n.keepalive
            ),
        );
        self.doc.para(
            "A keep-alive sent to a follower goes on to the leader, which owns the leases (both systems).",
        );
        self.load_table("c3-lease-keepalive", &["c3-lease-keepalive"], |t, r| {
            t.row(r, Row::rate("throughput", |r| r.throughput));
            latency_rows(t, r);
        })?;

        self.doc.heading(
            3,
            &format!(
                "Lock cycles under contention, all members: 8 clients, one lock ({} cycles)",
                n.lock
            ),
        );
        self.load_table("c3-lock-cycles", &["c3-lock-cycles"], lock_rows)?;

        self.doc.heading(
            3,
            &format!(
                "Election failover, all members: the leader stops renewing its 2 s lease ({} rounds)",
                n.elections
            ),
        );
        self.load_table(
            "c3-election-failover",
            &["c3-election-failover"],
            election_rows,
        )?;

        self.leader_failover()?;
        self.plugin_failover()
    }

    fn leader_failover(&mut self) -> anyhow::Result<()> {
        let m = self.m;
        let rounds = m.counts.failover_rounds;
        self.doc.heading(
            3,
            &format!(
                "Leader failover: kill -9 of the leader to the first successful write ({rounds} rounds each)"
            ),
        );
        self.doc.para(
            "The leader is killed with SIGKILL; at once a probe puts one key through the two survivors,\n\
             in turn, each attempt giving up after 100 ms, until a put succeeds: the time is from the\n\
             kill to that response, so it includes noticing the loss (election timeout 1000 ms on both),\n\
             the election and the first commit. The killed member is restarted between rounds.",
        );
        let mut elapsed = Vec::new();
        let mut failed = Vec::new();
        for system in m.systems() {
            let probes: Vec<ProbeReport> = self.r.numbered("failover", rounds, system)?;
            let mut ms: Vec<f64> = probes.iter().map(|p| p.elapsed_ms).collect();
            ms.sort_by(f64::total_cmp);
            failed.push(probes.iter().map(|p| p.failed_attempts).sum::<u64>());
            elapsed.push(ms);
        }
        let mut t = Table::new(&self.columns, "");
        let median: Vec<f64> = elapsed
            .iter()
            .map(|ms| ms.get(ms.len() / 2).copied().unwrap_or(0.0))
            .collect();
        let slowest: Vec<f64> = elapsed
            .iter()
            .map(|ms| ms.last().copied().unwrap_or(0.0))
            .collect();
        t.row(&median, Row::ms("median", |v| *v));
        t.row(&slowest, Row::ms("slowest", |v| *v));
        t.text_row(
            "every round",
            elapsed.iter().map(|ms| format!("{} ms", every_round(ms))),
        );
        t.text_row(
            "failed attempts, all rounds",
            failed.iter().map(u64::to_string),
        );
        self.doc.table(&t);
        self.doc.code([m.probe_command.as_str()]);
        Ok(())
    }

    fn plugin_failover(&mut self) -> anyhow::Result<()> {
        let m = self.m;
        let p = &m.plugins;
        self.doc.heading(
            3,
            "Plugins: deploy to first output, and leader kill to resumed flushing",
        );
        self.doc.para(
            "`rollup` with 1 s windows and 100 ms lateness on the 3 conclave members above (etcd has no\n\
             plugins). A probe puts a sample every 20 ms and reads the rule's rollups. Deploy to first\n\
             output includes validating and compiling the component, Raft, and waiting for the first\n\
             window to close. For the failover, the leader is killed with SIGKILL; the time is until a\n\
             window open at the kill (or later) is written, which only the next leader can do: it\n\
             includes the election (1000 ms timeout) and the window's close. Compare with the put\n\
             failover above.",
        );
        let deploy: RollupProbeReport = self.r.file("plugin-deploy.conclave.json")?;
        let probes: Vec<RollupProbeReport> =
            self.r
                .numbered("plugin-failover", m.counts.plugin_failover_rounds, CONCLAVE)?;
        let mut ms: Vec<f64> = probes.iter().map(|p| p.elapsed_ms).collect();
        ms.sort_by(f64::total_cmp);
        self.doc.para(&format!(
            "| metric | conclave |\n|---|---:|\n\
             | deploy to first rollup | {:.0} ms |\n\
             | kill -9 of the leader to the next flush, median | {:.0} ms |\n\
             | every round | {} ms |",
            deploy.elapsed_ms,
            ms.get(ms.len() / 2).copied().unwrap_or(0.0),
            every_round(&ms)
        ));
        self.doc.code([
            p.probe_deploy_command.as_str(),
            p.rollup_probe_command.as_str(),
        ]);
        Ok(())
    }

    fn large_data(&mut self) -> anyhow::Result<()> {
        let m = self.m;
        let n = &m.counts;
        self.doc
            .heading(2, "Large data: a fresh single member each");
        self.doc.para(
            "Both started afresh for these loads (same flags as the single members above, new data\n\
             dirs), so that the figures carry nothing from the loads above. Values are random bytes\n\
             from the load generator, the same for both: nothing compresses.",
        );
        self.doc.code(m.servers.big.iter().map(String::as_str));

        self.doc.heading(
            3,
            &format!(
                "Range of {} keys with limit 0, 10 clients ({} ranges, serializable)",
                n.big_range_keys, n.big_ranges
            ),
        );
        self.doc.para(&format!(
            "Every request reads every key under one prefix ({} keys of 256 bytes, about {} MiB per\n\
             response): etcd's large-range memory problem. The keys are put first (untimed, 10\n\
             clients); memory growth is the server's peak resident memory during the ranges less its\n\
             resident memory before them (the peak is restarted there, through /proc/PID/clear_refs).",
            n.big_range_keys,
            mib((n.big_range_keys * 272) as f64)
        ));
        let loaded: Vec<ProcStat> = self.r.each("stat-loaded")?;
        let ranged: Vec<ProcStat> = self.r.each("stat-range")?;
        let growth: Vec<f64> = loaded
            .iter()
            .zip(&ranged)
            .map(|(before, during)| during.rss_peak_bytes as f64 - before.rss_bytes as f64)
            .collect();
        self.load_table("big-range", &["big-range-fill", "big-range"], |t, r| {
            t.row(r, Row::rate("throughput", |r| r.throughput));
            latency_rows(t, r);
            t.row(&growth, Row::bytes("peak memory growth", |v| *v));
        })?;

        self.doc.heading(
            3,
            &format!("Memory and disk after {} keys of 1 KiB", n.big_keys),
        );
        self.doc.para(&format!(
            "Put by 100 clients over 10 connections (16-byte keys), on top of the range keys above;\n\
             measured 10 s after the last put; the peak is the one during the puts. Disk is what the\n\
             files occupy (as `du` counts) and the sum of their lengths. The keys and values alone are\n\
             {} MiB, and random values do not compress: a data dir of half etcd's would be smaller\n\
             than the data it holds unless etcd's overhead is as large as the data.",
            mib((n.big_keys * (16 + 1024) + n.big_range_keys * (16 + 256)) as f64)
        ));
        let million: Vec<ProcStat> = self.r.each("stat-million")?;
        let mut t = Table::new(&self.columns, GOALS);
        stat_rows(&mut t, &million, Some(Goal::at(0.5)));
        self.doc.table(&t);
        let big: Vec<Report> = self.r.loads("big-put")?;
        let mut t = Table::new(&self.columns, GOALS);
        t.row(&big, Row::rate("put throughput", |r| r.throughput));
        t.row(&big, Row::ms("p99 put latency", |r| r.latency_ms.p99));
        t.text_row("errors", big.iter().map(|r| r.errors.to_string()));
        self.doc.table(&t);
        self.error_messages(&big);
        self.doc.code(m.commands_for(&["big-put"]));
        self.doc.code([m.stat_command.as_str()]);
        Ok(())
    }
}

fn latency_rows(t: &mut Table<'_>, r: &[Report]) {
    t.row(r, Row::ms("p50 latency", |r| r.latency_ms.p50));
    t.row(r, Row::ms("p99 latency", |r| r.latency_ms.p99));
}

fn lock_rows(t: &mut Table<'_>, r: &[Report]) {
    t.row(r, Row::rate("cycles per second", |r| r.throughput));
    t.row(
        r,
        Row::ms("p50 cycle (incl. waiting)", |r| r.latency_ms.p50),
    );
}

fn election_rows(t: &mut Table<'_>, r: &[Report]) {
    t.row(r, Row::ms("p50 failover", |r| r.latency_ms.p50));
    t.row(r, Row::ms("slowest failover", |r| r.latency_ms.max));
}

/// Resident memory and data dir size; `goal` is set on resident memory and allocated disk.
fn stat_rows(t: &mut Table<'_>, stats: &[ProcStat], goal: Option<Goal>) {
    let peak = match goal {
        Some(_) => "peak resident memory, during the puts",
        None => "peak resident memory",
    };
    t.row(
        stats,
        Row::bytes("resident memory", |s: &ProcStat| s.rss_bytes as f64).goal_of(goal),
    );
    t.row(stats, Row::bytes(peak, |s| s.rss_peak_bytes as f64));
    let allocated = Row::bytes("data dir, allocated", |s: &ProcStat| {
        s.data_dir_allocated_bytes as f64
    });
    t.row(stats, allocated.goal_of(goal));
    t.row(
        stats,
        Row::bytes("data dir, file lengths", |s| s.data_dir_bytes as f64),
    );
}

/// Each round's milliseconds to a tenth, fastest first.
fn every_round(ms: &[f64]) -> String {
    ms.iter()
        .map(|v| format!("{}", (v * 10.0).round() / 10.0))
        .collect::<Vec<_>>()
        .join(", ")
}
