//! The browser harness itself: JavaScript is off when asked for, so a
//! test that relies on it proves what it claims.

use khien_testkit::browser::{self, Browser};

#[test]
fn javascript_is_off_only_when_asked() {
    if !browser::present() {
        return;
    }
    assert!(Browser::start(true, "en").scripts_run());
    assert!(!Browser::start(false, "en").scripts_run());
}
