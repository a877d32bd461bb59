//! The clauses of `spec/*.md`, read the way `tools/spec_checklist.py` reads them: a paragraph
//! that starts with `**ID** (LEVEL)`.

use std::path::Path;

/// One normative clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    /// Stable id, e.g. `RING-8`.
    pub id: String,
    /// `MUST`, `SHOULD` or `MAY`.
    pub level: String,
    /// The document it is in.
    pub document: String,
}

/// Every clause of the `spec` directory, in document order.
pub fn clauses(spec_dir: &Path) -> Result<Vec<Clause>, String> {
    let mut docs: Vec<_> = std::fs::read_dir(spec_dir)
        .map_err(|e| format!("{}: {e}", spec_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()) == Some("md")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    docs.sort();
    let mut out = Vec::new();
    for doc in docs {
        let text = std::fs::read_to_string(&doc).map_err(|e| format!("{}: {e}", doc.display()))?;
        let document = doc
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        out.extend(parse(&text, &document));
    }
    Ok(out)
}

/// The clauses of one document's text.
pub fn parse(text: &str, document: &str) -> Vec<Clause> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("**")?;
            let (id, rest) = rest.split_once("** (")?;
            let (level, _) = rest.split_once(')')?;
            let (prefix, number) = id.split_once('-')?;
            let ok = !prefix.is_empty()
                && prefix.chars().all(|c| c.is_ascii_uppercase())
                && !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit())
                && matches!(level, "MUST" | "SHOULD" | "MAY");
            ok.then(|| Clause {
                id: id.to_owned(),
                level: level.to_owned(),
                document: document.to_owned(),
            })
        })
        .collect()
}

/// Rank of a level: MUST 3, SHOULD 2, MAY 1.
pub fn rank(level: &str) -> u8 {
    match level {
        "MUST" => 3,
        "SHOULD" => 2,
        "MAY" => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_clause_paragraphs_only() {
        let text = "intro\n**RING-8** (MUST) A consumer validates.\n**not a clause**\n**X-1** (MAYBE) no\n**WAIT-1** (SHOULD) spin.";
        let c = parse(text, "03-ring.md");
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].id.as_str(), c[0].level.as_str()), ("RING-8", "MUST"));
        assert_eq!(c[1].id, "WAIT-1");
        assert!(rank("MUST") > rank("SHOULD"));
    }

    #[test]
    fn the_repository_spec_has_must_clauses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec");
        let all = clauses(&dir).unwrap();
        assert!(all.iter().any(|c| c.id == "HDR-1" && c.level == "MUST"));
        assert!(all.iter().filter(|c| c.level == "MUST").count() > 50);
    }
}
