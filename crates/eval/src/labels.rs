//! Ground-truth label files and split files.
//!
//! Two label formats are read, told apart by their header (column names are matched without
//! regard to case or surrounding spaces):
//! - **categorical**, like HAM10000's `metadata.csv`: an `image_id` (or `image`) column and a `dx`
//!   column holding a class code;
//! - **one-hot**, like the ISIC 2018 ground-truth CSVs: an `image` (or `image_id`) column and one
//!   column per class code (`MEL`, `NV`, `BCC`, `AKIEC`, `BKL`, `DF`, `VASC`) holding 1 for the
//!   true class and 0 elsewhere.
//!
//! Split files (`image_id,split`, as in `training/split.csv`) select the rows of one split.

use std::collections::{HashMap, HashSet};
use std::io::Read;

/// One labelled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledImage {
    /// Image id without extension, e.g. `ISIC_0024306`.
    pub image_id: String,
    /// Index of the true class in the model's class order.
    pub class_index: usize,
}

/// Which label format a file was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelFormat {
    /// An id column and a `dx` column.
    Categorical,
    /// An id column and one 0/1 column per class.
    OneHot,
}

/// The labels of a file, in file order, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// The labelled images, first occurrence order.
    pub images: Vec<LabelledImage>,
    /// The format detected from the header.
    pub format: LabelFormat,
    /// Rows that repeated an earlier image with the same label (HAM10000 has none; tolerated).
    pub duplicates: usize,
}

/// Why a label or split file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The CSV itself is malformed or unreadable.
    #[error("CSV error: {0}")]
    Csv(#[from] csv::Error),
    /// No usable id column.
    #[error("no `image_id` or `image` column (columns: {0})")]
    NoIdColumn(String),
    /// Neither a `dx` column nor one-hot class columns.
    #[error(
        "no `dx` column and no one-hot class columns named after the model's classes ({classes}); columns: {columns}"
    )]
    NoLabelColumns {
        /// The model's class codes.
        classes: String,
        /// The columns found.
        columns: String,
    },
    /// A `dx` value that is not one of the model's classes.
    #[error("line {line}: label `{label}` is not one of the model's classes ({classes})")]
    UnknownLabel {
        /// 1-based line in the file.
        line: u64,
        /// The value found.
        label: String,
        /// The model's class codes.
        classes: String,
    },
    /// A one-hot row without exactly one class set.
    #[error("line {line}: expected exactly one class column set to 1, found {found}")]
    BadOneHot {
        /// 1-based line in the file.
        line: u64,
        /// How many class columns were set.
        found: usize,
    },
    /// A one-hot cell that is not a number.
    #[error("line {line}: `{value}` in column {column} is not a number")]
    BadNumber {
        /// 1-based line in the file.
        line: u64,
        /// The column name.
        column: String,
        /// The value found.
        value: String,
    },
    /// A row without an image id.
    #[error("line {line}: empty image id")]
    EmptyId {
        /// 1-based line in the file.
        line: u64,
    },
    /// The same image appears twice with different labels.
    #[error("image {image_id} is labelled both `{first}` and `{second}`")]
    Conflict {
        /// The image.
        image_id: String,
        /// First label seen.
        first: String,
        /// Conflicting label.
        second: String,
    },
    /// A split file without the needed columns.
    #[error("split file needs `image_id` and `split` columns (columns: {0})")]
    BadSplitHeader(String),
    /// The requested split does not occur in the split file.
    #[error("split `{wanted}` not found in the split file (splits present: {present})")]
    NoSuchSplit {
        /// The split asked for.
        wanted: String,
        /// The splits in the file.
        present: String,
    },
}

fn header_index(headers: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    names.iter().find_map(|name| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    })
}

fn column_list(headers: &csv::StringRecord) -> String {
    headers.iter().collect::<Vec<_>>().join(", ")
}

/// Strips a trailing image extension, so that `ISIC_1.jpg` and `ISIC_1` name the same image.
pub fn normalise_id(raw: &str) -> String {
    let id = raw.trim();
    for ext in [".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"] {
        if let Some(stem) = id.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    id.to_string()
}

fn line_of(record: &csv::StringRecord) -> u64 {
    record.position().map_or(0, |p| p.line())
}

/// Reads a label CSV of either format; `class_codes` are the model's class codes in output order.
pub fn read_labels<R: Read>(reader: R, class_codes: &[&str]) -> Result<Labels, LabelError> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(reader);
    let headers = rdr.headers()?.clone();
    let id_col = header_index(&headers, &["image_id", "image"])
        .ok_or_else(|| LabelError::NoIdColumn(column_list(&headers)))?;
    let codes = class_codes.join(", ");

    enum Layout {
        Dx(usize),
        OneHot(Vec<(usize, usize)>), // (column, class index)
    }
    let layout = if let Some(dx) = header_index(&headers, &["dx"]) {
        Layout::Dx(dx)
    } else {
        let cols: Vec<(usize, usize)> = class_codes
            .iter()
            .enumerate()
            .filter_map(|(class, code)| header_index(&headers, &[code]).map(|col| (col, class)))
            .collect();
        // One matching column could be a coincidence; a one-hot file names (nearly) every class.
        if cols.len() < 2 {
            return Err(LabelError::NoLabelColumns {
                classes: codes,
                columns: column_list(&headers),
            });
        }
        Layout::OneHot(cols)
    };

    let mut images: Vec<LabelledImage> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut duplicates = 0;
    for record in rdr.records() {
        let record = record?;
        let line = line_of(&record);
        let image_id = normalise_id(record.get(id_col).unwrap_or(""));
        if image_id.is_empty() {
            return Err(LabelError::EmptyId { line });
        }
        let class_index = match &layout {
            Layout::Dx(col) => {
                let label = record.get(*col).unwrap_or("");
                class_codes
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case(label))
                    .ok_or_else(|| LabelError::UnknownLabel {
                        line,
                        label: label.to_string(),
                        classes: codes.clone(),
                    })?
            }
            Layout::OneHot(cols) => {
                let mut set = Vec::new();
                for &(col, class) in cols {
                    let value = record.get(col).unwrap_or("");
                    let x: f64 = value.parse().map_err(|_| LabelError::BadNumber {
                        line,
                        column: headers.get(col).unwrap_or("").to_string(),
                        value: value.to_string(),
                    })?;
                    if x >= 0.5 {
                        set.push(class);
                    }
                }
                match set.as_slice() {
                    [one] => *one,
                    _ => {
                        return Err(LabelError::BadOneHot {
                            line,
                            found: set.len(),
                        });
                    }
                }
            }
        };
        match seen.get(&image_id) {
            Some(&earlier) if images[earlier].class_index == class_index => duplicates += 1,
            Some(&earlier) => {
                return Err(LabelError::Conflict {
                    image_id,
                    first: class_codes[images[earlier].class_index].to_string(),
                    second: class_codes[class_index].to_string(),
                });
            }
            None => {
                seen.insert(image_id.clone(), images.len());
                images.push(LabelledImage {
                    image_id,
                    class_index,
                });
            }
        }
    }
    let format = match layout {
        Layout::Dx(_) => LabelFormat::Categorical,
        Layout::OneHot(_) => LabelFormat::OneHot,
    };
    Ok(Labels {
        images,
        format,
        duplicates,
    })
}

/// Reads a split CSV (`image_id,split`) and returns the ids of the rows whose split is `name`.
pub fn read_split<R: Read>(reader: R, name: &str) -> Result<HashSet<String>, LabelError> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = rdr.headers()?.clone();
    let (Some(id_col), Some(split_col)) = (
        header_index(&headers, &["image_id", "image"]),
        header_index(&headers, &["split"]),
    ) else {
        return Err(LabelError::BadSplitHeader(column_list(&headers)));
    };
    let mut ids = HashSet::new();
    let mut present: Vec<String> = Vec::new();
    for record in rdr.records() {
        let record = record?;
        let split = record.get(split_col).unwrap_or("");
        if split == name {
            let id = normalise_id(record.get(id_col).unwrap_or(""));
            if id.is_empty() {
                return Err(LabelError::EmptyId {
                    line: line_of(&record),
                });
            }
            ids.insert(id);
        } else if !present.iter().any(|p| p == split) {
            present.push(split.to_string());
        }
    }
    if ids.is_empty() {
        return Err(LabelError::NoSuchSplit {
            wanted: name.to_string(),
            present: present.join(", "),
        });
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODES: [&str; 7] = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"];

    #[test]
    fn ham10000_metadata_is_read_as_categorical_labels_in_file_order() {
        let csv = "lesion_id,image_id,dx,dx_type,age,sex,localization\n\
                   HAM_0000118,ISIC_0027419,bkl,histo,80.0,male,scalp\n\
                   HAM_0002730,ISIC_0026769,mel,histo,80.0,male,scalp\n\
                   HAM_0001466,ISIC_0031633,vasc,histo,75.0,male,ear\n";
        let labels = read_labels(csv.as_bytes(), &CODES).unwrap();
        assert_eq!(labels.format, LabelFormat::Categorical);
        let got: Vec<(&str, usize)> = labels
            .images
            .iter()
            .map(|l| (l.image_id.as_str(), l.class_index))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ISIC_0027419", 2),
                ("ISIC_0026769", 4),
                ("ISIC_0031633", 6)
            ]
        );
    }

    #[test]
    fn isic_one_hot_ground_truth_is_read_whatever_the_column_order() {
        let csv = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\n\
                   ISIC_0034524,0.0,1.0,0.0,0.0,0.0,0.0,0.0\n\
                   ISIC_0034525,0.0,0.0,0.0,1.0,0.0,0.0,0.0\n\
                   ISIC_0034526.jpg,1.0,0.0,0.0,0.0,0.0,0.0,0.0\n\
                   ISIC_0034527,0,0,0,0,0,0,1\n";
        let labels = read_labels(csv.as_bytes(), &CODES).unwrap();
        assert_eq!(labels.format, LabelFormat::OneHot);
        let got: Vec<(&str, usize)> = labels
            .images
            .iter()
            .map(|l| (l.image_id.as_str(), l.class_index))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ISIC_0034524", 5),
                ("ISIC_0034525", 0),
                ("ISIC_0034526", 4),
                ("ISIC_0034527", 6)
            ]
        );
    }

    #[test]
    fn a_one_hot_row_with_two_classes_set_is_rejected_with_its_line() {
        let csv = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_1,1,1,0,0,0,0,0\n";
        let err = read_labels(csv.as_bytes(), &CODES).unwrap_err();
        assert!(
            matches!(err, LabelError::BadOneHot { line: 2, found: 2 }),
            "{err}"
        );
    }

    #[test]
    fn a_one_hot_cell_that_is_not_a_number_is_rejected() {
        let csv = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_1,yes,0,0,0,0,0,0\n";
        assert!(matches!(
            read_labels(csv.as_bytes(), &CODES),
            Err(LabelError::BadNumber { .. })
        ));
    }

    #[test]
    fn an_unknown_dx_is_an_error_naming_the_label() {
        let csv = "image_id,dx\nISIC_1,nv\nISIC_2,scc\n";
        let err = read_labels(csv.as_bytes(), &CODES).unwrap_err();
        assert!(
            err.to_string().contains("`scc`") && err.to_string().contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn a_file_without_id_or_label_columns_is_rejected() {
        assert!(matches!(
            read_labels("name,dx\na,nv\n".as_bytes(), &CODES),
            Err(LabelError::NoIdColumn(_))
        ));
        assert!(matches!(
            read_labels("image_id,diagnosis\na,nv\n".as_bytes(), &CODES),
            Err(LabelError::NoLabelColumns { .. })
        ));
    }

    #[test]
    fn repeated_rows_are_merged_but_conflicting_labels_are_an_error() {
        let labels = read_labels("image_id,dx\na,nv\na,nv\nb,mel\n".as_bytes(), &CODES).unwrap();
        assert_eq!(labels.images.len(), 2);
        assert_eq!(labels.duplicates, 1);
        let err = read_labels("image_id,dx\na,nv\na,mel\n".as_bytes(), &CODES).unwrap_err();
        assert!(matches!(err, LabelError::Conflict { .. }), "{err}");
    }

    #[test]
    fn a_split_file_selects_only_the_named_split() {
        let csv = "image_id,split\nISIC_1,train\nISIC_2,test\nISIC_3,val\nISIC_4,test\n";
        let ids = read_split(csv.as_bytes(), "test").unwrap();
        assert_eq!(
            ids,
            HashSet::from(["ISIC_2".to_string(), "ISIC_4".to_string()])
        );
        let err = read_split(csv.as_bytes(), "holdout").unwrap_err();
        assert!(err.to_string().contains("train, test, val"), "{err}");
    }

    #[test]
    fn a_split_file_with_extra_columns_is_accepted_and_one_without_split_is_not() {
        let csv = "lesion_id,image_id,dx,split\nH1,ISIC_1,nv,test\n";
        assert_eq!(read_split(csv.as_bytes(), "test").unwrap().len(), 1);
        assert!(matches!(
            read_split("image_id,fold\na,1\n".as_bytes(), "test"),
            Err(LabelError::BadSplitHeader(_))
        ));
    }
}
