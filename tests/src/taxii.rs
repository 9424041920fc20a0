//! A real TAXII 2.1 server for the feed-polling tests: OASIS's reference server `medallion`
//! (PyPI; tests/run.sh installs it) with its memory backend, one API root (`api1`) holding
//! one collection, on a loopback address of the test's own. Objects are added the way a
//! producer adds them, by POSTing an envelope to the collection.

use std::{
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::paths;

/// The collection every server holds.
pub const COLLECTION: &str = "365fed99-08fa-fdcd-a1b3-fb247eb41d01";
const PORT: u16 = 5000;
/// medallion (Flask) answers within a second or two; more on a loaded machine.
const START_WAIT: Duration = Duration::from_secs(60);

pub struct Medallion {
    ip: String,
    /// The user and password objects are added with.
    writer: (String, String),
    process: Option<Child>,
}

impl Medallion {
    /// Starts a server on `ip` with `users` (name, password), pages of `page_size` objects.
    pub fn start(dir: &Path, ip: &str, users: &[(&str, &str)], page_size: usize) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        // A server left from another run would answer in this one's place.
        assert!(
            TcpStream::connect((ip, PORT)).is_err(),
            "something listens on {ip}:{PORT} already"
        );
        let data = serde_json::json!({
            "/discovery": {
                "title": "xdr-mesh test TAXII server",
                "default": format!("http://{ip}:{PORT}/api1/"),
                "api_roots": [format!("http://{ip}:{PORT}/api1/")]
            },
            "api1": {
                "information": {
                    "title": "api1",
                    "versions": ["application/taxii+json;version=2.1"],
                    "max_content_length": 9_765_625
                },
                "status": [],
                "collections": [{
                    "id": COLLECTION,
                    "title": "indicators",
                    "can_read": true,
                    "can_write": true,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": [],
                    "manifest": []
                }]
            }
        });
        let data_file = dir.join("data.json");
        std::fs::write(&data_file, data.to_string()).unwrap();
        let writer = users.first().expect("a user to add objects as");
        let writer = (writer.0.to_owned(), writer.1.to_owned());
        let users: serde_json::Map<String, serde_json::Value> = users
            .iter()
            .map(|(user, password)| ((*user).to_owned(), (*password).into()))
            .collect();
        let config = serde_json::json!({
            "backend": {
                "module": "medallion.backends.memory_backend",
                "module_class": "MemoryBackend",
                "filename": data_file,
            },
            "users": users,
            "taxii": {"max_page_size": page_size}
        });
        let config_file = dir.join("medallion.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let process = Command::new(paths::medallion())
            .args(["--host", ip, "--port", &PORT.to_string()])
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("medallion.log")).unwrap())
            .spawn()
            .expect("medallion starts (tests/run.sh installs it)");
        let mut server = Medallion {
            ip: ip.to_owned(),
            writer,
            process: Some(process),
        };
        let deadline = Instant::now() + START_WAIT;
        while TcpStream::connect((ip, PORT)).is_err() {
            assert!(Instant::now() < deadline, "medallion did not listen");
            if let Some(status) = server.process.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "medallion exited: {status}: {}",
                    std::fs::read_to_string(dir.join("medallion.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// The API root, as a supplier names it.
    pub fn api_root(&self) -> String {
        format!("http://{}:{PORT}/api1/", self.ip)
    }

    /// Adds the objects of the JSON array `objects` to the collection.
    pub fn add(&self, objects: &str) {
        let envelope = format!("{{\"objects\": {objects}}}");
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
            .args(["-u", &format!("{}:{}", self.writer.0, self.writer.1)])
            .args(["-H", "Content-Type: application/taxii+json;version=2.1"])
            .args(["-H", "Accept: application/taxii+json;version=2.1"])
            .args(["--data-binary", &envelope])
            .arg(format!(
                "{}collections/{COLLECTION}/objects/",
                self.api_root()
            ))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.trim_end().ends_with("202") && text.contains("\"success_count\""),
            "adding objects: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Stops the server at once (SIGKILL), as a server that goes away does.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for Medallion {
    fn drop(&mut self) {
        self.kill();
    }
}
