//! Real ClickHouse servers for the event-store tests: Debian's `clickhouse-server` (18.16;
//! tests/run.sh installs it), one process per shard on a loopback address of the test's own,
//! each with a minimal config of ours and a data folder under the test's scratch folder. The
//! shards form one cluster, `xdr_events`, as `<remote_servers>` names them (no ZooKeeper:
//! nothing is replicated). A shard can be stopped and started again on its data.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The cluster the shards form.
pub const CLUSTER: &str = "xdr_events";
const HTTP_PORT: u16 = 8123;
const TCP_PORT: u16 = 9000;
/// A server answers its `/ping` within this (about 5 s here, more on a loaded machine).
const START_WAIT: Duration = Duration::from_secs(60);

pub struct Shard {
    pub ip: String,
    dir: PathBuf,
    process: Option<Child>,
}

/// The shards of one cluster, stopped on drop.
pub struct ClickHouse {
    pub shards: Vec<Shard>,
}

/// The server binary: `$XDR_CLICKHOUSE_SERVER`, else Debian's.
fn server_binary() -> PathBuf {
    let path = std::env::var_os("XDR_CLICKHOUSE_SERVER").map_or_else(
        || PathBuf::from("/usr/sbin/clickhouse-server"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: tests/run.sh installs Debian's clickhouse-server",
        path.display()
    );
    path
}

impl ClickHouse {
    /// Starts a shard on each of `ips` (loopback addresses no other test uses), in `dir`.
    pub fn start(dir: &Path, ips: &[&str]) -> Self {
        let replicas: String = ips
            .iter()
            .map(|ip| {
                format!(
                    "<shard><replica><host>{ip}</host><port>{TCP_PORT}</port></replica></shard>"
                )
            })
            .collect();
        let shards = ips
            .iter()
            .map(|ip| {
                let dir = dir.join(format!("clickhouse-{ip}"));
                std::fs::create_dir_all(&dir).unwrap();
                let d = dir.display();
                let config = format!(
                    r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>{HTTP_PORT}</http_port>
  <tcp_port>{TCP_PORT}</tcp_port>
  <listen_host>{ip}</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>/etc/clickhouse-server/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <remote_servers><{CLUSTER}>{replicas}</{CLUSTER}></remote_servers>
</yandex>
"#
                );
                std::fs::write(dir.join("config.xml"), config).unwrap();
                Shard {
                    ip: (*ip).to_owned(),
                    dir,
                    process: None,
                }
            })
            .collect();
        let mut cluster = ClickHouse { shards };
        for shard in 0..ips.len() {
            cluster.start_shard(shard);
        }
        cluster
    }

    /// `clickhouse+http://…/database` over every shard.
    pub fn url(&self, database: &str) -> String {
        let hosts: Vec<String> = self
            .shards
            .iter()
            .map(|s| format!("{}:{HTTP_PORT}", s.ip))
            .collect();
        format!("clickhouse+http://{}/{database}", hosts.join(","))
    }

    /// Starts shard `shard` (again) on its data and waits until it answers.
    pub fn start_shard(&mut self, shard: usize) {
        let shard = &mut self.shards[shard];
        assert!(shard.process.is_none(), "shard {} runs already", shard.ip);
        let child = Command::new(server_binary())
            .arg(format!(
                "--config-file={}",
                shard.dir.join("config.xml").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clickhouse-server starts");
        shard.process = Some(child);
        let deadline = Instant::now() + START_WAIT;
        while query_at(&shard.ip, "SELECT 1").as_deref() != Ok("1\n") {
            assert!(
                Instant::now() < deadline,
                "ClickHouse on {} did not answer within {START_WAIT:?}: {}",
                shard.ip,
                std::fs::read_to_string(shard.dir.join("server.err.log")).unwrap_or_default()
            );
            if let Some(status) = shard.process.as_mut().unwrap().try_wait().unwrap() {
                panic!("ClickHouse on {} exited: {status}", shard.ip);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops shard `shard` at once (SIGKILL) and waits until its port is closed.
    pub fn kill_shard(&mut self, shard: usize) {
        let shard = &mut self.shards[shard];
        if let Some(mut child) = shard.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What `sql` answers on shard `shard`, as text (TSV).
    pub fn query(&self, shard: usize, sql: &str) -> String {
        query_at(&self.shards[shard].ip, sql)
            .unwrap_or_else(|e| panic!("{sql} on {}: {e}", self.shards[shard].ip))
    }
}

impl Shard {
    /// Its server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        for shard in 0..self.shards.len() {
            self.kill_shard(shard);
        }
    }
}

/// `sql` POSTed to the server on `ip`; its answer, or why there is none.
fn query_at(ip: &str, sql: &str) -> Result<String, String> {
    // Refused at once while the server starts; a bounded wait per try otherwise.
    TcpStream::connect_timeout(
        &format!("{ip}:{HTTP_PORT}").parse().unwrap(),
        Duration::from_secs(2),
    )
    .map_err(|e| e.to_string())?;
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "--data-binary", "@-"])
        .arg(format!("http://{ip}:{HTTP_PORT}/"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(sql.as_bytes())?;
            child.wait_with_output()
        })
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() || text.starts_with("Code: ") {
        return Err(format!("{text}{}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(text)
}
