//! The CPU time a PostgreSQL server on this machine spends, read from `/proc`: what a step
//! costs the server itself, steadier on a shared machine than a speed.
//!
//! Every process of a server is a child of its postmaster. A process alive is read from its
//! own `/proc/<pid>/stat` (user + system time); when one ends, the kernel adds its time to
//! the postmaster's `cutime + cstime` as the postmaster reaps it. Their sum, with the
//! postmaster's own, only grows, whichever processes start and end between two reads: the
//! difference of two reads is the server's CPU in between (backends, autovacuum, WAL
//! writer, checkpointer; everything the server did, for any database).
//!
//! Only when the server runs on this machine and its processes are readable (the same user,
//! or root); otherwise none.
//!
//! This process's own CPU time is read the same way ([`own_seconds`]): what a step costs
//! finflow's side, beside what it costs the server.

use sqlx::PgPool;

/// What `/proc` counts CPU time in (USER_HZ, 100 on every Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// A PostgreSQL server running on this machine: its postmaster.
#[derive(Debug, Clone, Copy)]
pub struct ServerCpu {
    postmaster: u32,
}

impl ServerCpu {
    /// The server `admin` is connected to, if it runs here: the session's backend process,
    /// found by its pid (`pg_backend_pid()`), is a `postgres` process started when the server
    /// says that backend started (`pg_stat_activity.backend_start`, to the second), and its
    /// parent, the postmaster, is a `postgres` process too. A server elsewhere has none.
    ///
    /// The backend's start, not the postmaster's, is compared: it is moments old, whereas the
    /// machine's clock may have been set since the server started (as a restored virtual
    /// machine's may be), which moves `/proc`'s idea of an old process's start but not the
    /// server's.
    pub async fn find(admin: &PgPool) -> Option<Self> {
        let (pid, started): (i32, f64) = sqlx::query_as(
            "SELECT pid, extract(epoch FROM backend_start)::float8 \
             FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        )
        .fetch_one(admin)
        .await
        .ok()?;
        let backend = stat(u32::try_from(pid).ok()?)?;
        let postmaster = stat(backend.ppid)?;
        let here = boot_time()? + backend.start_ticks as f64 / TICKS_PER_SECOND;
        (backend.comm == "postgres"
            && postmaster.comm == "postgres"
            && (here - started).abs() < 2.0)
            .then_some(Self {
                postmaster: backend.ppid,
            })
    }

    /// The server's CPU seconds so far: the postmaster's own and its children's, alive and
    /// ended. `None` once the postmaster is gone.
    pub fn seconds(&self) -> Option<f64> {
        let postmaster = stat(self.postmaster)?;
        let mut ticks = postmaster.utime + postmaster.stime + postmaster.cutime + postmaster.cstime;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(child) = stat(pid).filter(|s| s.ppid == self.postmaster) {
                ticks += child.utime + child.stime;
            }
        }
        Some(ticks as f64 / TICKS_PER_SECOND)
    }
}

/// This process's CPU seconds so far: user + system time of all its threads (the engine,
/// the callback receiver and, in a bench, the in-process sandbox and the bench itself).
/// `None` where `/proc` cannot be read.
pub fn own_seconds() -> Option<f64> {
    let own = stat(std::process::id())?;
    Some((own.utime + own.stime) as f64 / TICKS_PER_SECOND)
}

/// The fields of `/proc/<pid>/stat` read here.
#[derive(Debug, PartialEq)]
struct Stat {
    comm: String,
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
    /// When it started, in ticks after the machine booted.
    start_ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `pid (comm) state ppid ...`: the name may hold blanks and parentheses, so the fields are
/// counted from the last `)` (field 3, the state, first; `proc(5)` numbers them from 1).
fn parse(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        comm: text.get(open + 1..close)?.to_owned(),
        ppid: u32::try_from(field(4)?).ok()?,
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
        start_ticks: field(22)?,
    })
}

/// When the machine booted, in seconds since the epoch (`btime` of `/proc/stat`).
fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_by_field_number_whatever_the_name() {
        let line = "4242 (postgres: a (b) c) S 17 4242 4242 0 -1 4194560 1 2 3 4 \
                    250 75 31 9 20 0 1 0 100 1000 200";
        assert_eq!(
            parse(line),
            Some(Stat {
                comm: "postgres: a (b) c".into(),
                ppid: 17,
                utime: 250,
                stime: 75,
                cutime: 31,
                cstime: 9,
                start_ticks: 100,
            })
        );
        assert_eq!(parse("4242 (postgres) S"), None, "too few fields");
    }

    #[test]
    fn this_process_is_read_with_its_start_after_the_boot() {
        let me = stat(std::process::id()).expect("/proc/self");
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        let started = boot_time().expect("btime") + me.start_ticks as f64 / TICKS_PER_SECOND;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert!((0.0..3600.0).contains(&(now - started)), "{started} {now}");
    }

    /// The CPU another thread of this process spends counts in [`own_seconds`].
    #[test]
    fn another_threads_cpu_counts_as_this_processs() {
        let before = own_seconds().expect("/proc/self");
        let spent = std::thread::spawn(|| {
            let started = std::time::Instant::now();
            let mut x: u64 = 1;
            // 0.2 s of CPU at least, by the thread's own clock (the machine may be busy).
            while thread_cpu_seconds() < 0.2 && started.elapsed().as_secs() < 30 {
                for _ in 0..100_000 {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                }
                std::hint::black_box(x);
            }
            thread_cpu_seconds()
        })
        .join()
        .expect("the spinning thread");
        let after = own_seconds().expect("/proc/self");
        assert!(spent >= 0.2, "the thread spent only {spent} s of CPU");
        assert!(
            after - before >= spent - 0.05,
            "this process: {before} s, then {after} s, around a thread's {spent} s"
        );
    }

    /// The calling thread's CPU seconds (`/proc/thread-self/stat`).
    fn thread_cpu_seconds() -> f64 {
        let text = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self");
        let own = parse(&text).expect("a stat line");
        (own.utime + own.stime) as f64 / TICKS_PER_SECOND
    }
}
