//! A real headless Chromium driven over WebDriver (Debian's `chromium`
//! and `chromium-driver`), for pages that must work as a person's browser
//! sees them — with JavaScript off when a page promises to work without.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether Chromium and ChromeDriver are here (see [`crate::required`]).
pub fn present() -> bool {
    crate::required(
        Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
        "chromium and chromedriver are needed (Debian packages `chromium` and `chromium-driver`)",
    )
}

/// One browser session; the browser and its driver end when dropped.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    profile: PathBuf,
    agent: ureq::Agent,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium with a fresh profile,
    /// no network access of its own (background services off), JavaScript
    /// on or off, and `lang` (`vi`, `en`) as the language it asks pages in.
    pub fn start(javascript: bool, lang: &str) -> Browser {
        let port = crate::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent.get(format!("{root}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile =
            std::env::temp_dir().join(format!("khien-chromium-{}-{port}", std::process::id()));
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", profile.display()),
            format!("--lang={lang}"),
        ];
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false".into());
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                "prefs": {
                    "profile.managed_default_content_settings.javascript":
                        if javascript { 1 } else { 2 },
                    "intl.accept_languages": lang,
                },
            },
        }}});
        let mut browser = Browser {
            driver,
            base: String::new(),
            profile,
            agent,
        };
        let session = browser.call("POST", &format!("{root}/session"), Some(&caps));
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
            .to_string();
        browser.base = format!("{root}/session/{id}");
        browser
    }

    fn call(&self, method: &str, url: &str, body: Option<&Value>) -> Value {
        self.try_call(method, url, body)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    /// A WebDriver command: its value, or its error.
    fn try_call(&self, method: &str, url: &str, body: Option<&Value>) -> Result<Value, Value> {
        let reply = match body {
            Some(b) => {
                let req = match method {
                    "POST" => self.agent.post(url),
                    other => panic!("{other} with a body"),
                };
                req.header("Content-Type", "application/json")
                    .send(b.to_string().as_bytes())
            }
            None => match method {
                "GET" => self.agent.get(url).call(),
                "DELETE" => self.agent.delete(url).call(),
                other => panic!("{other} without a body"),
            },
        };
        let mut reply = reply.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let text = reply.body_mut().read_to_string().expect("WebDriver reply");
        let value: Value = serde_json::from_str(&text).expect("WebDriver JSON");
        let value = value.get("value").cloned().unwrap_or(Value::Null);
        if reply.status().is_success() {
            Ok(value)
        } else {
            Err(value)
        }
    }

    /// Opens `url` and waits for the page to load.
    pub fn open(&self, url: &str) {
        self.call(
            "POST",
            &format!("{}/url", self.base),
            Some(&json!({"url": url})),
        );
    }

    /// The current page's markup as the browser holds it.
    pub fn source(&self) -> String {
        self.call("GET", &format!("{}/source", self.base), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's visible text (read again when a navigation replaced the
    /// page under the read).
    pub fn text(&self) -> String {
        let mut last = Value::Null;
        for _ in 0..50 {
            let body = self.find("body");
            match self.try_call("GET", &format!("{}/element/{body}/text", self.base), None) {
                Ok(text) => return text.as_str().unwrap_or_default().to_string(),
                Err(e) if e["error"] == "stale element reference" => last = e,
                Err(e) => panic!("the page's text: {e}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the page's text: {last}")
    }

    fn find(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            &format!("{}/element", self.base),
            Some(&json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css:?}: {found}"))
            .to_string()
    }

    /// Clicks the first element matching `css` (a submit button posts its
    /// form, and the call returns once the next page has loaded).
    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.call(
            "POST",
            &format!("{}/element/{element}/click", self.base),
            Some(&json!({})),
        );
    }

    /// Whether scripts run on the current page.
    pub fn scripts_run(&self) -> bool {
        // With scripts off the driver's own script still runs; a script
        // element in the page is what tells.
        self.open("data:text/html,<p id=x>off</p><script>document.getElementById('x').textContent='on'</script>");
        self.text().contains("on")
    }
}
