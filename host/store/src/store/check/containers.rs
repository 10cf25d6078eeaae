//! The containers phase of `check`: each container's big data, and its image, whose problems
//! are the container's too.

use super::{
    note, Findings, CONTAINER_DATA_INCORRECT_SIZE, CONTAINER_DATA_MISSING, CONTAINER_IMAGE_MISSING,
};
use crate::containers::ContainerRecord;
use crate::records::big_data_file_name;
use crate::store::Ctx;

impl Ctx<'_> {
    /// Every container; its layer becomes referenced.
    pub(super) fn check_containers(&mut self, found: &mut Findings) {
        for c in self.st.containers.records.clone() {
            let mut problems = self.check_container_data(&c);
            if !c.image.is_empty() {
                if !found.examined_images.contains(&c.image) {
                    problems.push(format!("image {}: {CONTAINER_IMAGE_MISSING}", c.image));
                }
                for source in [&found.report.images, &found.report.ro_images] {
                    if let Some(errs) = source.get(&c.image) {
                        problems.extend(errs.iter().cloned());
                    }
                }
            }
            if !c.layer.is_empty() {
                found.referenced.insert(c.layer.clone(), true);
            }
            for p in problems {
                note(&mut found.report.containers, &c.id, p);
            }
        }
    }

    /// Big data of a container: present, with its recorded size.
    fn check_container_data(&self, c: &ContainerRecord) -> Vec<String> {
        let id = &c.id;
        let dir = self.store.containers_dir.path().join(id);
        let mut problems = Vec::new();
        for key in &c.big_data_names {
            match std::fs::read(dir.join(big_data_file_name(key))) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => problems.push(format!(
                    "container {id}: data item {key:?}: {CONTAINER_DATA_MISSING}"
                )),
                Err(e) => problems.push(format!(
                    "container {id}: data item {key:?}: {}",
                    storage_archive::error::os_error_text(&e)
                )),
                Ok(data) => {
                    if data.len() as i64 != c.big_data_sizes.get(key).copied().unwrap_or(0) {
                        problems.push(format!(
                            "container {id}: data item {key:?}: {CONTAINER_DATA_INCORRECT_SIZE}"
                        ));
                    }
                }
            }
        }
        problems
    }
}
