//! The built-in templates and the override directory.

use std::path::Path;

use khien_model::Channel;
use khien_notify::sms::{SmsEncoding, measure, without_diacritics};
use khien_notify::templates::{BILL_MAX_CHARS, GROUPS, builtin_names};
use khien_notify::{Error, Lang, Rendered, Templates};

use super::{context, context_en};

/// The text as minijinja's HTML auto-escaping writes it.
fn html_escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

fn render(t: &Templates, channel: Channel, group: &str, lang: Lang) -> Rendered {
    let ctx = match lang {
        Lang::Vi => context(),
        Lang::En => context_en(),
    };
    t.render(channel, group, lang, &ctx)
        .unwrap_or_else(|e| panic!("{channel} {group} {lang}: {e}"))
}

#[test]
fn every_builtin_renders_with_a_full_context() {
    let t = Templates::load(None).unwrap();
    for &channel in Channel::ALL {
        for group in GROUPS {
            for &lang in Lang::ALL {
                let r = render(&t, channel, group, lang);
                let all = format!(
                    "{}\n{}\n{}",
                    r.subject.as_deref().unwrap_or(""),
                    r.text,
                    r.html.as_deref().unwrap_or("")
                );
                let what = format!("{channel} {group} {lang}");
                assert!(!r.text.is_empty(), "{what}");
                assert!(r.text.contains("Viettel"), "{what}");
                assert!(r.text.contains("mirai"), "{what}");
                assert!(r.text.contains("20261201-00000042"), "{what}");
                assert!(r.text.contains("K7PX3QMD"), "{what}");
                assert!(r.text.contains("https://viettel.vn/khien"), "{what}");
                assert!(!all.contains("{{") && !all.contains("{%"), "{what}: {all}");
                assert!(!all.to_lowercase().contains("<script"), "{what}");
                assert!(!all.to_lowercase().contains("<img"), "{what}");
                match lang {
                    Lang::Vi => {
                        assert!(r.text.contains("Quý khách"), "{what}");
                    }
                    Lang::En => {
                        assert!(!r.text.contains("Quý khách"), "{what}");
                    }
                }
                match channel {
                    Channel::Email => {
                        let subject = r.subject.as_deref().unwrap();
                        assert!(!subject.contains('\n'), "{what}");
                        let html = r.html.as_deref().unwrap();
                        assert!(html.starts_with("<!DOCTYPE html>"), "{what}");
                        assert!(
                            html.contains(&format!(
                                "href=\"{}\"",
                                html_escaped(&context().ack_url)
                            ))
                        );
                        // Every guidance step, in the text and the HTML.
                        let ctx = if lang == Lang::Vi {
                            context()
                        } else {
                            context_en()
                        };
                        for step in &ctx.guidance_steps {
                            assert!(r.text.contains(step.as_str()), "{what}: {step}");
                            assert!(
                                html.contains(&format!("<li>{}</li>", html_escaped(step))),
                                "{what}"
                            );
                        }
                        assert!(r.text.contains(&ctx.scanner_url), "{what}");
                        assert!(r.text.contains(&ctx.ack_url), "{what}");
                        assert!(r.text.contains("12.873") || r.text.contains("12,873"));
                    }
                    Channel::Web => {
                        let html = r.html.as_deref().unwrap();
                        assert!(html.starts_with("<!DOCTYPE html>"), "{what}");
                        assert!(html.trim_end().ends_with("</html>"), "{what}");
                        assert!(
                            html.contains(&format!(
                                "<form method=\"post\" action=\"{}\">",
                                html_escaped(&context().ack_url)
                            )),
                            "{what}"
                        );
                        assert!(html.contains("<button type=\"submit\">"), "{what}");
                        assert!(html.contains("203.0.113.45"), "{what}");
                        assert!(r.subject.is_none());
                    }
                    Channel::Sms => {
                        assert!(r.html.is_none() && r.subject.is_none());
                        // Fits three GSM-7 parts once folded.
                        let info = measure(&without_diacritics(&r.text));
                        assert_eq!(info.encoding, SmsEncoding::Gsm7, "{what}: {}", r.text);
                        assert!(info.segments <= 3, "{what}: {info:?} {}", r.text);
                        assert!(r.text.contains(&context().ack_url), "{what}");
                    }
                    Channel::CallQueue => {
                        assert!(!r.text.contains('\n'), "{what}: {}", r.text);
                    }
                    Channel::Bill => {
                        let n = r.text.chars().count();
                        assert!(n <= BILL_MAX_CHARS, "{what}: {n} characters: {}", r.text);
                        assert!(!r.text.contains('\n'), "{what}");
                    }
                }
            }
        }
    }
}

#[test]
fn builtin_sms_fit_the_default_three_parts_for_a_long_operator_name_and_a_reminder() {
    let t = Templates::load(None).unwrap();
    for &lang in Lang::ALL {
        let base = match lang {
            Lang::Vi => context(),
            Lang::En => context_en(),
        };
        let ctx = khien_notify::NoticeContext {
            operator: "Tổng công ty Viễn thông MobiFone".into(),
            verify_url: "https://canhbao.mobifone.vn/verify".into(),
            ack_url: format!("https://canhbao.mobifone.vn/ack/{}", "A".repeat(44)),
            family: "mozi".into(),
            round: 2,
            ..base
        };
        for group in GROUPS {
            let r = t.render(Channel::Sms, group, lang, &ctx).unwrap();
            let info = measure(&without_diacritics(&r.text));
            assert!(
                info.segments <= 3,
                "sms {group} {lang}: {info:?}, so it would fail as too long: {}",
                r.text
            );
        }
    }
}

#[test]
fn vietnamese_times_and_numbers() {
    let t = Templates::load(None).unwrap();
    let vi = render(&t, Channel::Email, "default", Lang::Vi);
    // 2026-11-28 17:05 UTC is the next morning in Hà Nội.
    assert!(
        vi.text.contains("Lần đầu: 29/11/2026 00:05 (giờ Việt Nam)"),
        "{}",
        vi.text
    );
    assert!(
        vi.text
            .contains("Lần gần nhất: 01/12/2026 09:40 (giờ Việt Nam)")
    );
    assert!(vi.text.contains("Số lần ghi nhận: 12.873"));
    assert!(vi.text.contains("Kính gửi Nguyễn Thị Hồng Nhung,"));
    let en = render(&t, Channel::Email, "default", Lang::En);
    assert!(
        en.text
            .contains("First seen: 2026-11-29 00:05 (Vietnam time)")
    );
    assert!(en.text.contains("Times seen: 12,873"));
    assert!(en.text.contains("Dear Jane Doe,"));
}

#[test]
fn groups_change_the_explanation() {
    let t = Templates::load(None).unwrap();
    let text = |g| render(&t, Channel::Email, g, Lang::Vi).text;
    assert!(text("iot-bot").contains("camera giám sát"));
    assert!(text("windows-bot").contains("máy tính chạy Windows"));
    assert!(text("stealer").contains("đổi mật khẩu"));
    assert!(text("android-banker").contains("điện thoại Android"));
    assert!(text("miner").contains("đào tiền ảo"));
    let subject = |g| render(&t, Channel::Email, g, Lang::En).subject.unwrap();
    assert!(subject("stealer").contains("passwords"));
    assert!(subject("iot-bot").contains("router"));
    // The rest of the notice is the default one.
    for g in GROUPS {
        assert!(text(g).contains("KIỂM TRA THƯ NÀY LÀ THẬT"), "{g}");
    }
}

#[test]
fn unknown_group_falls_back_to_default() {
    let t = Templates::load(None).unwrap();
    let ctx = context();
    assert_eq!(
        t.render(Channel::Email, "ransomware", Lang::Vi, &ctx)
            .unwrap(),
        t.render(Channel::Email, "default", Lang::Vi, &ctx).unwrap()
    );
}

#[test]
fn reminders_say_so() {
    let t = Templates::load(None).unwrap();
    let mut ctx = context();
    ctx.round = 3;
    let r = t.render(Channel::Email, "iot-bot", Lang::Vi, &ctx).unwrap();
    assert!(r.subject.unwrap().starts_with("[Nhắc lại] "));
    assert!(r.text.contains("Đây là thư nhắc lại (lần 2)."));
    let first = t
        .render(Channel::Email, "iot-bot", Lang::Vi, &context())
        .unwrap();
    assert!(!first.text.contains("nhắc lại"));
    let sms = t.render(Channel::Sms, "default", Lang::En, &ctx).unwrap();
    assert!(sms.text.contains("(Reminder)"));
}

#[test]
fn optional_fields_may_be_empty() {
    let t = Templates::load(None).unwrap();
    let mut ctx = context();
    ctx.subscriber_name = None;
    ctx.address = None;
    let r = t.render(Channel::Web, "default", Lang::Vi, &ctx).unwrap();
    assert!(r.text.contains("Kính gửi Quý khách,"));
    assert!(!r.text.contains("địa chỉ IP"));
    let call = t
        .render(Channel::CallQueue, "default", Lang::Vi, &ctx)
        .unwrap();
    assert!(
        call.text
            .starts_with("Xin chào Quý khách, tôi là nhân viên Viettel")
    );
}

#[test]
fn html_escapes_and_text_does_not() {
    let t = Templates::load(None).unwrap();
    let mut ctx = context();
    ctx.subscriber_name = Some("<script>alert(1)</script> & Co".into());
    let r = t.render(Channel::Email, "default", Lang::Vi, &ctx).unwrap();
    let html = r.html.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; Co"));
    assert!(r.text.contains("Kính gửi <script>alert(1)</script> & Co,"));
    let web = t.render(Channel::Web, "stealer", Lang::En, &ctx).unwrap();
    assert!(!web.html.unwrap().contains("<script>"));
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn override_replaces_one_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sms/default.vi.txt",
        "{{ operator }}: mã độc {{ family }}, mã {{ verify_code }}.\n",
    );
    write(dir.path(), ".gitkeep", "");
    write(dir.path(), "sms/.default.vi.txt.swp", "{{ broken");
    let t = Templates::load(Some(dir.path())).unwrap();
    assert!(t.is_override("sms/default.vi.txt"));
    assert!(!t.is_override("sms/default.en.txt"));
    assert_eq!(t.names().len(), builtin_names().count());
    let r = t
        .render(Channel::Sms, "default", Lang::Vi, &context())
        .unwrap();
    assert_eq!(r.text, "Viettel: mã độc mirai, mã K7PX3QMD.");
    // Other files stay built-in.
    let en = t
        .render(Channel::Sms, "default", Lang::En, &context_en())
        .unwrap();
    assert!(en.text.contains("never ask for passwords"));
}

#[test]
fn overridden_default_shows_through_group_templates() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "email/default.en.txt",
        "Header for {{ operator }}\n{% block explanation %}general{% endblock %}\nFooter {{ ticket }}\n",
    );
    let t = Templates::load(Some(dir.path())).unwrap();
    let r = t
        .render(Channel::Email, "miner", Lang::En, &context_en())
        .unwrap();
    assert!(r.text.starts_with("Header for Viettel"), "{}", r.text);
    assert!(
        r.text.contains("malware mines cryptocurrency"),
        "{}",
        r.text
    );
    assert!(r.text.ends_with("Footer 20261201-00000042"), "{}", r.text);
}

#[test]
fn override_syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "email/stealer.vi.txt",
        "dòng một\ndòng hai\n{% if round > 1 %}\nnhắc lại\n",
    );
    let e = Templates::load(Some(dir.path())).unwrap_err();
    let Error::Template { file, line, reason } = &e else {
        panic!("{e:?}");
    };
    assert!(file.ends_with("email/stealer.vi.txt"), "{file}");
    assert!(Path::new(file).is_absolute(), "{file}");
    assert!(matches!(line, Some(3..=5)), "{line:?}");
    assert!(reason.contains("syntax error"), "{reason}");
    assert!(e.to_string().contains("stealer.vi.txt:"), "{e}");
}

#[test]
fn override_with_undefined_variable_fails_at_load() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bill/miner.en.txt",
        "{{ operator }}\n{{ famliy }}\n",
    );
    let e = Templates::load(Some(dir.path())).unwrap_err();
    let Error::Template { file, line, reason } = &e else {
        panic!("{e:?}");
    };
    assert!(file.ends_with("bill/miner.en.txt"), "{file}");
    assert_eq!(*line, Some(2));
    assert!(reason.contains("undefined"), "{reason}");
}

#[test]
fn override_with_unknown_filter_or_parent_fails_at_load() {
    for (name, text) in [
        ("web/iot-bot.vi.txt", "{{ family|shout }}"),
        ("web/iot-bot.vi.txt", "{% extends \"web/nothing.vi.txt\" %}"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), name, text);
        let e = Templates::load(Some(dir.path())).unwrap_err();
        assert!(matches!(e, Error::Template { .. }), "{e:?}");
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn unknown_override_files_are_refused() {
    for name in [
        "email/iot-bots.vi.txt",
        "email/default.fr.txt",
        "email/default.vi.text",
        "sms/default.vi.html",
        "emails/default.vi.txt",
        "default.vi.txt",
        "email/nested/default.vi.txt",
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), name, "{{ operator }}");
        let e = Templates::load(Some(dir.path())).unwrap_err();
        let Error::Template {
            file, line: None, ..
        } = &e
        else {
            panic!("{name}: {e:?}");
        };
        let first = name.split('/').next().unwrap();
        assert!(file.contains(first), "{name}: {file}");
    }
}

#[test]
fn missing_override_dir_is_an_io_error() {
    let e = Templates::load(Some(Path::new("/nonexistent/khien-templates"))).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
}

/// Golden renderings, so wording changes show in review. `KHIEN_BLESS=1`
/// rewrites them.
#[test]
fn golden_renderings() {
    let t = Templates::load(None).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (channel, group, lang, file) in [
        (Channel::Email, "iot-bot", Lang::Vi, "email-iot-bot.vi.txt"),
        (Channel::Email, "stealer", Lang::En, "email-stealer.en.txt"),
        (Channel::Sms, "default", Lang::Vi, "sms-default.vi.txt"),
        (
            Channel::CallQueue,
            "android-banker",
            Lang::Vi,
            "call-queue-android-banker.vi.txt",
        ),
        (Channel::Bill, "default", Lang::Vi, "bill-default.vi.txt"),
    ] {
        let r = render(&t, channel, group, lang);
        let mut actual = String::new();
        if let Some(s) = &r.subject {
            actual.push_str(&format!("Subject: {s}\n\n"));
        }
        actual.push_str(&r.text);
        actual.push('\n');
        let path = dir.join(file);
        if std::env::var_os("KHIEN_BLESS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with KHIEN_BLESS=1)", path.display()));
        assert_eq!(actual, expected, "{} differs", path.display());
    }
}
