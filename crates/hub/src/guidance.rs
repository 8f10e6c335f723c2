//! Citizen-facing texts in Vietnamese (default) and English, from the
//! catalogue files under `crates/hub/i18n/`: messages of the public
//! lookups and removal guidance per family group (`families.toml` says
//! which family belongs to which group). The catalogues are compiled in
//! and checked by a test: every group and message exists in both
//! languages.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const VI: &str = include_str!("../i18n/vi.toml");
const EN: &str = include_str!("../i18n/en.toml");
const FAMILIES: &str = include_str!("../i18n/families.toml");

/// A language of the catalogues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Vi,
    En,
}

impl Language {
    /// `?lang=` if given, else the first of `Accept-Language` we have,
    /// else Vietnamese.
    pub fn choose(query: Option<&str>, accept_language: Option<&str>) -> Language {
        let pick = |s: &str| match s.trim().get(..2).map(str::to_ascii_lowercase).as_deref() {
            Some("en") => Some(Language::En),
            Some("vi") => Some(Language::Vi),
            _ => None,
        };
        query
            .and_then(pick)
            .or_else(|| accept_language.and_then(|h| h.split(',').find_map(pick)))
            .unwrap_or(Language::Vi)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Catalogue {
    messages: HashMap<String, String>,
    guidance: HashMap<String, Guidance>,
}

/// Removal guidance for a family.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Guidance {
    pub title: String,
    pub steps: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FamilyGroups {
    groups: HashMap<String, FamilyGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FamilyGroup {
    families: Vec<String>,
}

struct Texts {
    vi: Catalogue,
    en: Catalogue,
    group_of: HashMap<String, String>,
}

fn key(family: &str) -> String {
    family
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

fn texts() -> &'static Texts {
    static TEXTS: OnceLock<Texts> = OnceLock::new();
    TEXTS.get_or_init(|| {
        // The catalogues are compiled in and tested; an empty one would
        // only show keys instead of text.
        let parse = |t: &str| {
            toml::from_str(t).unwrap_or(Catalogue {
                messages: HashMap::new(),
                guidance: HashMap::new(),
            })
        };
        let groups: FamilyGroups = toml::from_str(FAMILIES).unwrap_or(FamilyGroups {
            groups: HashMap::new(),
        });
        let mut group_of = HashMap::new();
        for (group, g) in groups.groups {
            for f in g.families {
                group_of.insert(key(&f), group.clone());
            }
        }
        Texts {
            vi: parse(VI),
            en: parse(EN),
            group_of,
        }
    })
}

fn catalogue(lang: Language) -> &'static Catalogue {
    match lang {
        Language::Vi => &texts().vi,
        Language::En => &texts().en,
    }
}

/// A message with `{name}` placeholders replaced.
pub fn message(lang: Language, name: &str, args: &[(&str, &str)]) -> String {
    let template = catalogue(lang)
        .messages
        .get(name)
        .or_else(|| texts().en.messages.get(name))
        .map_or(name, String::as_str);
    let mut out = template.to_string();
    for (k, v) in args {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// The group a family's guidance comes from (`default` when unknown).
pub fn group(family: &str) -> &'static str {
    texts()
        .group_of
        .get(&key(family))
        .map_or("default", String::as_str)
}

/// Removal guidance for `family`.
pub fn guidance(lang: Language, family: &str) -> Guidance {
    let cat = catalogue(lang);
    let g = cat
        .guidance
        .get(group(family))
        .or_else(|| cat.guidance.get("default"))
        .cloned()
        .unwrap_or(Guidance {
            title: family.to_string(),
            steps: Vec::new(),
        });
    Guidance {
        title: g.title.replace("{family}", family),
        steps: g.steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogues_parse_and_agree_on_every_key() {
        let vi: Catalogue = toml::from_str(VI).expect("vi.toml");
        let en: Catalogue = toml::from_str(EN).expect("en.toml");
        let groups: FamilyGroups = toml::from_str(FAMILIES).expect("families.toml");
        let mut vk: Vec<_> = vi.messages.keys().collect();
        let mut ek: Vec<_> = en.messages.keys().collect();
        vk.sort();
        ek.sort();
        assert_eq!(vk, ek, "the same messages in both languages");
        for g in groups.groups.keys().map(String::as_str).chain(["default"]) {
            for (lang, cat) in [("vi", &vi), ("en", &en)] {
                let guide = cat.guidance.get(g);
                assert!(
                    guide.is_some_and(|x| !x.steps.is_empty()),
                    "{lang} has guidance for {g}"
                );
            }
        }
    }

    #[test]
    fn families_find_their_group_whatever_the_spelling() {
        assert_eq!(group("Mirai"), "iot-bot");
        assert_eq!(group("agent_tesla"), "stealer");
        assert_eq!(group("Agent Tesla"), "stealer");
        assert_eq!(group("something-new"), "default");
        let g = guidance(Language::Vi, "mirai");
        assert!(g.title.contains("mirai"), "{}", g.title);
        assert!(g.steps[0].contains("modem"));
        let g = guidance(Language::En, "unknown-family");
        assert!(g.title.contains("unknown-family"));
    }

    #[test]
    fn language_comes_from_the_query_then_the_header() {
        assert_eq!(Language::choose(Some("en"), Some("vi")), Language::En);
        assert_eq!(
            Language::choose(None, Some("fr, en-GB;q=0.8")),
            Language::En
        );
        assert_eq!(Language::choose(None, None), Language::Vi);
        assert_eq!(Language::choose(Some("xx"), None), Language::Vi);
        let m = message(
            Language::En,
            "self_clean",
            &[("days", "7"), ("address", "192.0.2.1")],
        );
        assert!(m.contains("7 days") && m.contains("192.0.2.1"), "{m}");
    }
}
