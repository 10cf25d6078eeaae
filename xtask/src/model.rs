//! What the generators need to know about the command table beyond what it states: the
//! positional arguments of each command, read from its usage line, and what kind of value
//! each argument and flag takes (for completion).

use storage_cli::commands::CommandSpec;
use storage_cli::flags::{FlagKind, FlagSpec};

/// What a positional argument or a flag's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Something free-form (a data item's name, a digest, an ID map).
    Other,
    /// A file on the host.
    File,
    /// A directory on the host.
    Directory,
    /// A command to run.
    Command,
    /// The name or ID of a layer, an image or a container, or of one of several kinds.
    Object(Objects),
}

/// Which kinds of stored objects an argument may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Objects {
    /// A layer.
    pub layer: bool,
    /// An image.
    pub image: bool,
    /// A container.
    pub container: bool,
}

impl Objects {
    /// The kinds as the words `layer`, `image`, `container`, in that order.
    pub fn words(&self) -> Vec<&'static str> {
        [
            (self.layer, "layer"),
            (self.image, "image"),
            (self.container, "container"),
        ]
        .into_iter()
        .filter_map(|(on, word)| on.then_some(word))
        .collect()
    }
}

/// One positional argument of a command's usage line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Positional {
    /// Its placeholder, without brackets (`parentLayerNameOrID`).
    pub name: String,
    /// Whether it may be left out.
    pub optional: bool,
    /// Whether it may be given several times (`[...]` follows it).
    pub repeats: bool,
    /// What it is.
    pub kind: ValueKind,
}

/// The placeholder for "the command's flags" in usage lines, which is not an argument.
const OPTIONS_PLACEHOLDER: &str = "[options [...]]";

/// The positional arguments of `command`, read from its usage line (`options_help`): words
/// inside brackets are optional, `[...]` repeats the word before it. Words past the most
/// arguments the command takes are left out.
pub fn positionals(command: &CommandSpec) -> Vec<Positional> {
    let text = command.options_help.replace(OPTIONS_PLACEHOLDER, " ");
    let mut out: Vec<Positional> = Vec::new();
    let mut depth = 0usize;
    for word in text.split_whitespace() {
        let mut name = String::new();
        let mut depth_at_last_char = depth;
        for c in word.chars() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                c => {
                    name.push(c);
                    depth_at_last_char = depth;
                }
            }
        }
        if name == "..." {
            if let Some(last) = out.last_mut() {
                last.repeats = true;
            }
            continue;
        }
        let kind = argument_kind(&name);
        out.push(Positional {
            name,
            optional: depth_at_last_char > 0,
            repeats: false,
            kind,
        });
    }
    if let Some(max) = command.max_args {
        out.truncate(max);
    }
    out
}

/// The kind of a placeholder, from its words: `layerNameOrID`, `imageOrContainerNameOrID`,
/// `layoutDirectory[:reference]`, `configurationFile`, `command`, `[LAYER:]/path`.
fn argument_kind(placeholder: &str) -> ValueKind {
    let lower = placeholder.to_ascii_lowercase();
    if lower.contains("/path") {
        // `[layer:]/path`: a host path unless a layer is named before the colon.
        return ValueKind::File;
    }
    if lower.contains("directory") {
        return ValueKind::Directory;
    }
    if lower.contains("file") {
        return ValueKind::File;
    }
    if lower == "command" {
        return ValueKind::Command;
    }
    let objects = Objects {
        layer: lower.contains("layer"),
        image: lower.contains("image"),
        container: lower.contains("container"),
    };
    if objects.layer || objects.image || objects.container {
        ValueKind::Object(objects)
    } else {
        ValueKind::Other
    }
}

/// What a flag's value is: files for the flags that name one, directories for the roots.
pub fn flag_value_kind(flag: &FlagSpec) -> Option<ValueKind> {
    if flag.kind == FlagKind::Bool {
        return None;
    }
    Some(match flag.key() {
        "file" | "metadata-file" => ValueKind::File,
        "graph" | "run" | "image-store" => ValueKind::Directory,
        _ => ValueKind::Other,
    })
}

/// Every spelling of a flag, the short letter first: `-b`, `--bzip2`, `--bz2`.
pub fn spellings(flag: &FlagSpec) -> Vec<String> {
    flag.short
        .map(|c| format!("-{c}"))
        .into_iter()
        .chain(flag.long.iter().map(|l| format!("--{l}")))
        .collect()
}

/// The placeholder for a flag's value in the man pages: its key in capitals.
pub fn value_name(flag: &FlagSpec) -> String {
    flag.key().to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_cli::commands::find;

    /// What the `index`th argument is, as the completion scripts work it out: the repeating
    /// argument's kind for every index from its own on.
    fn positional_kind(positionals: &[Positional], index: usize) -> Option<ValueKind> {
        match positionals.iter().position(|p| p.repeats) {
            Some(r) if index >= r => Some(positionals[r].kind),
            _ => positionals.get(index).map(|p| p.kind),
        }
    }

    fn of(name: &str) -> Vec<Positional> {
        positionals(find(name).expect("a command of the table"))
    }

    const LAYER: ValueKind = ValueKind::Object(Objects {
        layer: true,
        image: false,
        container: false,
    });

    #[test]
    fn usage_lines_give_positionals() {
        let p = of("create-layer");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "parentLayerNameOrID");
        assert!(p[0].optional && !p[0].repeats);
        assert_eq!(p[0].kind, LAYER);

        let p = of("delete");
        assert_eq!(p.len(), 1);
        assert!(p[0].optional && p[0].repeats);
        assert_eq!(
            p[0].kind,
            ValueKind::Object(Objects {
                layer: true,
                image: true,
                container: true,
            })
        );

        let p = of("copy");
        assert_eq!(p.len(), 2);
        assert!(!p[0].optional && p[0].repeats && !p[1].optional);
        assert_eq!(p[0].kind, ValueKind::File);

        let p = of("export-oci");
        assert_eq!(
            p.iter().map(|p| p.kind).collect::<Vec<_>>(),
            [
                ValueKind::Object(Objects {
                    layer: false,
                    image: true,
                    container: false
                }),
                ValueKind::Directory
            ]
        );
        assert_eq!(of("unshare")[0].kind, ValueKind::Command);
        assert_eq!(of("config")[0].kind, ValueKind::File);
        assert_eq!(of("get-image-data")[1].kind, ValueKind::Other);
        assert!(of("layers").is_empty());
    }

    #[test]
    fn repeated_positionals_stay_of_their_kind() {
        let p = of("changes");
        assert_eq!(positional_kind(&p, 0), Some(LAYER));
        assert_eq!(positional_kind(&p, 1), Some(LAYER));
        assert_eq!(positional_kind(&p, 2), None);
        let p = of("layer");
        assert_eq!(positional_kind(&p, 5), Some(LAYER));
    }

    #[test]
    fn arguments_past_the_maximum_are_not_offered() {
        // Upstream's usage line shows a reference layer that applydiff does not take.
        assert_eq!(of("applydiff").len(), 1);
    }
}
