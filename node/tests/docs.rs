//! Documentation generated from code must be current.
//! Regenerate with `UPDATE_DOCS=1 cargo test -p shardline-node --test docs`.

const BEGIN: &str = "<!-- BEGIN GENERATED DIRECTIVES -->\n";
const END: &str = "<!-- END GENERATED DIRECTIVES -->";

#[test]
fn configuration_reference_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let doc = std::fs::read_to_string(path).expect("docs/configuration.md exists");
    let (Some(a), Some(b)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/configuration.md lacks the generated-directives markers");
    };
    let current = &doc[a + BEGIN.len()..b];
    let fresh = shardline_node::config::reference_markdown();
    if current != fresh {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let updated = format!("{}{}{}{}", &doc[..a], BEGIN, fresh, &doc[b..]);
            std::fs::write(path, updated).expect("write docs/configuration.md");
        } else {
            panic!("docs/configuration.md is stale: run UPDATE_DOCS=1 cargo test -p shardline-node --test docs");
        }
    }
}
