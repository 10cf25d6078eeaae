//! Layer content commands: changes, diffsize, diff, applydiff,
//! applydiff-using-staging-dir.

use std::io::Write;

use serde::Serialize;
use storage_driver::{Change, ChangeKind};
use storage_store::store::DiffCompression;

use super::{open_input, CliError, Ctx};
use crate::flags::FlagValues;
use crate::outln;
use storage_store::gostr;

/// One entry of `changes -j`: upstream's `archive.Change` fields (a path that is not
/// UTF-8 comes out with replacement characters, as Go's JSON encoder writes it).
#[derive(Serialize)]
struct ChangeJson {
    #[serde(rename = "Path")]
    path: String,
    #[serde(rename = "Kind")]
    kind: u8,
}

/// The text line `changes` prints for one change.
pub fn change_line(change: &Change) -> String {
    let what = match change.kind {
        ChangeKind::Add => "Add",
        ChangeKind::Modify => "Modify",
        ChangeKind::Delete => "Delete",
    };
    format!("{what} {}", gostr::quote_bytes(&change.path))
}

fn layer_and_from(ctx: &Ctx<'_>) -> (String, Option<String>) {
    let layer = ctx.inv.args.first().cloned().unwrap_or_default();
    let from = ctx.inv.args.get(1).filter(|f| !f.is_empty()).cloned();
    (layer, from)
}

/// `changes LAYER [FROM]`.
pub fn changes(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let (layer, from) = layer_and_from(ctx);
    let changes = ctx.store.changes(&layer, from.as_deref())?;
    if ctx.inv.json() {
        let list: Vec<ChangeJson> = changes
            .iter()
            .map(|c| ChangeJson {
                path: String::from_utf8_lossy(&c.path).into_owned(),
                kind: c.kind as u8,
            })
            .collect();
        // Upstream's list is a nil slice when there are no changes.
        super::print_json_nil_slice(ctx.out, &list)?;
    } else {
        for change in &changes {
            outln!(ctx.out, "{}", change_line(change))?;
        }
    }
    Ok(0)
}

/// `diffsize LAYER [FROM]`.
pub fn diff_size(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let (layer, from) = layer_and_from(ctx);
    let size = ctx.store.diff_size(&layer, from.as_deref())?;
    outln!(ctx.out, "{size}")?;
    Ok(0)
}

/// The compression `diff` was asked for; later flags in upstream's order win
/// (uncompressed < gzip < bzip2 < xz), none means "as recorded".
pub fn compression(flags: &FlagValues) -> DiffCompression {
    let mut c = DiffCompression::AsRecorded;
    if flags.bool("uncompressed") {
        c = DiffCompression::None;
    }
    if flags.bool("gzip") {
        c = DiffCompression::Gzip;
    }
    if flags.bool("bzip2") {
        c = DiffCompression::Bzip2;
    }
    if flags.bool("xz") {
        c = DiffCompression::Xz;
    }
    c
}

/// `diff [-f FILE] [-u|-c|-b|-x] LAYER [FROM]`.
pub fn diff(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let (layer, from) = layer_and_from(ctx);
    let compression = compression(&ctx.inv.flags);
    match ctx.inv.flags.value("file").filter(|f| !f.is_empty()) {
        Some(path) => {
            let file = super::create_output(path)?;
            let mut out = std::io::BufWriter::new(file);
            ctx.store
                .diff(&layer, from.as_deref(), compression, &mut out)?;
            out.flush()
                .map_err(|e| CliError::io(format!("writing {path}"), e))?;
        }
        None => {
            // Archive bytes are not lines: batch them instead of flushing at every '\n'.
            let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut *ctx.out);
            ctx.store
                .diff(&layer, from.as_deref(), compression, &mut out)?;
            out.flush().map_err(|e| CliError::io("writing output", e))?;
        }
    }
    Ok(0)
}

/// `applydiff [-f FILE] LAYER`.
pub fn apply_diff(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let layer = ctx.inv.args.first().cloned().unwrap_or_default();
    let mut input = open_input(ctx.inv.flags.value("file").filter(|f| !f.is_empty()))?;
    ctx.store.apply_diff(&layer, &mut input)?;
    Ok(0)
}

/// `applydiff-using-staging-dir LAYER DIR`: applies the content of DIR to the layer.
///
/// Upstream tars DIR, compresses it as zstd:chunked and applies it through overlay's
/// staging directory; the layer ends up with DIR's content either way. Here the tar of DIR
/// (made through a confined directory handle, on a second thread) is applied like
/// `applydiff`, so it also gets digests and tar-split.
pub fn apply_diff_using_staging_dir(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let layer = ctx.inv.args.first().cloned().unwrap_or_default();
    let dir = std::path::PathBuf::from(ctx.inv.args.get(1).cloned().unwrap_or_default());
    if !dir.is_dir() {
        return Err(CliError::Message(format!(
            "{}: not a directory",
            dir.display()
        )));
    }
    let (mut reader, mut writer) =
        std::io::pipe().map_err(|e| CliError::io("creating a pipe", e))?;
    let store = ctx.store;
    let shown = dir.display().to_string();
    std::thread::scope(|scope| {
        let tar = scope.spawn(move || {
            let opts = storage_driver::confined::diff_options(&Default::default());
            storage_driver::confined::write_tar(&dir, &mut writer, &opts)
        });
        let applied = store.apply_diff(&layer, &mut reader);
        drop(reader);
        let tarred = tar
            .join()
            .map_err(|_| CliError::Message("the tar thread panicked".into()))?;
        // The tar side's error explains a failed apply better than a broken stream does.
        tarred.map_err(|e| CliError::context(shown, e))?;
        applied?;
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_lines_quote_like_go() {
        let c = Change {
            path: b"/a \"b\"\n".to_vec(),
            kind: ChangeKind::Add,
        };
        assert_eq!(change_line(&c), r#"Add "/a \"b\"\n""#);
        let c = Change {
            path: b"/caf\xe9".to_vec(),
            kind: ChangeKind::Add,
        };
        assert_eq!(change_line(&c), r#"Add "/caf\xe9""#);
        let c = Change {
            path: b"/x".to_vec(),
            kind: ChangeKind::Delete,
        };
        assert_eq!(change_line(&c), r#"Delete "/x""#);
    }

    #[test]
    fn change_json_kinds() {
        let j = storage_store::gojson::to_string(&ChangeJson {
            path: "/p".into(),
            kind: ChangeKind::Modify as u8,
        });
        assert_eq!(j, r#"{"Path":"/p","Kind":0}"#);
    }

    #[test]
    fn compression_precedence() {
        let mut f = FlagValues::default();
        assert_eq!(compression(&f), DiffCompression::AsRecorded);
        f.push("uncompressed", "true".into());
        assert_eq!(compression(&f), DiffCompression::None);
        f.push("xz", "true".into());
        f.push("gzip", "true".into());
        assert_eq!(compression(&f), DiffCompression::Xz);
    }
}
