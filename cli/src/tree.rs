//! The `layers --tree` drawing, upstream's `cmd/containers-storage/tree.go` made deterministic:
//! where upstream picks among equally good roots in Go map order, the first in layer order wins.

use std::collections::{BTreeMap, BTreeSet};

const INDENT_STEP: usize = 2;
const VERTICAL: char = '\u{2502}';
const THIS_AND_MORE: &str = "\u{251c}";
const JUST_THIS: &str = "\u{2514}";
const STEM: &str = "\u{2500}";

/// One edge of the tree: `child` hangs under `parent`, with note lines under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    /// The parent's ID, or `(base)`.
    pub parent: String,
    /// The node's ID.
    pub child: String,
    /// Lines printed under the node (`name: x`, `mount: /p`, ...).
    pub notes: Vec<String>,
}

/// Draws the whole forest.
pub fn render(nodes: &[TreeNode]) -> String {
    let mut out = String::new();
    let mut remaining: Vec<TreeNode> = nodes.to_vec();
    while !remaining.is_empty() {
        let Some(root) = select_root(&remaining) else {
            break;
        };
        out.push_str(&root);
        out.push('\n');
        let before = remaining.len();
        remaining = render_subtree(&mut out, &root, remaining, 0, &[]);
        if remaining.len() == before {
            break;
        }
    }
    out
}

/// The parent that is nobody's child and has the fewest children (first seen on ties).
fn select_root(nodes: &[TreeNode]) -> Option<String> {
    let children: BTreeSet<&str> = nodes.iter().map(|n| n.child.as_str()).collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for n in nodes {
        let count = counts.entry(n.parent.as_str()).or_insert(0);
        if *count == 0 {
            order.push(n.parent.as_str());
        }
        *count += 1;
    }
    let mut favorite: Option<&str> = None;
    for parent in order {
        if children.contains(parent) {
            continue;
        }
        match favorite {
            Some(f) if counts[parent] >= counts[f] => {}
            _ => favorite = Some(parent),
        }
    }
    favorite.map(str::to_string)
}

fn render_subtree(
    out: &mut String,
    root: &str,
    nodes: Vec<TreeNode>,
    indent: usize,
    continued: &[usize],
) -> Vec<TreeNode> {
    let (children, mut leftovers): (Vec<TreeNode>, Vec<TreeNode>) =
        nodes.into_iter().partition(|n| n.parent == root);
    let count = children.len();
    for (n, child) in children.into_iter().enumerate() {
        let mut prefix: Vec<char> = vec![' '; indent];
        for &column in continued {
            if let Some(c) = prefix.get_mut(column) {
                *c = VERTICAL;
            }
        }
        let prefix: String = prefix.into_iter().collect();
        let mut sub_continued = continued.to_vec();
        let (header, note_header) = if n + 1 < count {
            sub_continued.push(indent);
            (THIS_AND_MORE, VERTICAL.to_string())
        } else {
            (JUST_THIS, " ".to_string())
        };
        let stem = STEM.repeat(INDENT_STEP - 1);
        out.push_str(&format!("{prefix}{header}{stem}{}\n", child.child));
        let pad = " ".repeat(INDENT_STEP - 1);
        for note in &child.notes {
            out.push_str(&format!("{prefix}{note_header}{pad}{note}\n"));
        }
        leftovers = render_subtree(
            out,
            &child.child,
            leftovers,
            indent + INDENT_STEP,
            &sub_continued,
        );
    }
    leftovers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(parent: &str, child: &str, notes: &[&str]) -> TreeNode {
        TreeNode {
            parent: parent.into(),
            child: child.into(),
            notes: notes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn spec_example() {
        let nodes = vec![
            node("(base)", "17f4", &["name: lay1"]),
            node("17f4", "7604", &[]),
            node(
                "17f4",
                "c7c6",
                &["name: imported", "image: fabd", "image name: img1"],
            ),
            node(
                "c7c6",
                "3e80",
                &["mount: /m/3e80", "container: b11d", "container name: ctr1"],
            ),
        ];
        let expected = "(base)\n\
└─17f4\n\
\u{20} name: lay1\n\
\u{20} ├─7604\n\
\u{20} └─c7c6\n\
\u{20}   name: imported\n\
\u{20}   image: fabd\n\
\u{20}   image name: img1\n\
\u{20}   └─3e80\n\
\u{20}     mount: /m/3e80\n\
\u{20}     container: b11d\n\
\u{20}     container name: ctr1\n";
        assert_eq!(render(&nodes), expected);
    }

    #[test]
    fn vertical_bars_for_ancestors_with_later_siblings() {
        let nodes = vec![
            node("(base)", "a", &[]),
            node("a", "b", &["name: nb"]),
            node("b", "c", &[]),
            node("a", "d", &[]),
        ];
        let expected = "(base)\n└─a\n  ├─b\n  │ name: nb\n  │ └─c\n  └─d\n";
        assert_eq!(render(&nodes), expected);
    }

    #[test]
    fn orphans_get_their_missing_parent_as_root() {
        let nodes = vec![node("(base)", "a", &[]), node("gone", "x", &[])];
        assert_eq!(render(&nodes), "(base)\n└─a\ngone\n└─x\n");
    }

    #[test]
    fn empty_forest_prints_nothing() {
        assert_eq!(render(&[]), "");
    }
}
