//! The generic file source: a CSV or JSON export of devices (from a local path or a URL) with
//! a column mapping, so an authority can feed systems bestand does not speak yet, such as
//! IServ host lists or procurement spreadsheets.
//!
//! A row that cannot be read (wrong number of fields, no id, a duplicate id) fails the whole
//! fetch with its line number, so the engine changes nothing; a value that cannot be read
//! (a bad date or price) becomes a problem on its record and the record is kept.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bestand_model::model::DeviceCategory;
use bestand_model::money::{self, Notation};
use bestand_model::normalize::{self, DateError};
use bestand_model::protocol::{FetchFailure, SourcePage};
use bestand_model::record::DeviceRecord;
use bestand_model::tabular::{self, Encoding};
use chrono::NaiveDate;
use serde::Deserialize;

use crate::http::{display_url_without_query, HttpClient, HttpSettings};
use crate::url_keys::{self, UrlKeyError};
use crate::{Connector, PageSink};

/// Records per page handed to the engine.
const PAGE_SIZE: usize = 1000;

/// The bestand fields a column can be mapped to.
pub const FIELDS: &[&str] = &[
    "name",
    "asset_tag",
    "serial_number",
    "udid",
    "imei",
    "wifi_mac",
    "manufacturer",
    "model",
    "model_identifier",
    "os_name",
    "os_version",
    "category",
    "school",
    "building",
    "room",
    "order_number",
    "purchase_date",
    "supplier",
    "price",
    "currency",
    "warranty_end",
    "life_expectancy_years",
    "username",
    "real_name",
    "email",
];

/// Configuration of one file source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// A local file to read at every run; give this or `url`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// An http(s) URL to fetch at every run; give this or `path`.
    #[serde(default)]
    pub url: Option<String>,
    /// `csv` or `json`; default from the file name's extension.
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// CSV field separator; default: what the header line uses (`;`, tab or `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// CSV text encoding, `utf-8` or `windows-1252`; default: UTF-8 when the file is valid
    /// UTF-8, else Windows-1252 (German Excel's "CSV (Trennzeichen-getrennt)").
    #[serde(default)]
    pub encoding: Option<Encoding>,
    /// Which separator is the decimal one in a price like `1.299` that could be read either
    /// way (`german` or `english`); default: such prices are refused.
    #[serde(default)]
    pub price_notation: Option<Notation>,
    /// The column (CSV header or JSON key) that identifies a record across runs; required.
    pub id_column: String,
    /// JSON only: where the array of devices is, as a JSON pointer (`/devices`); default: the
    /// document itself is the array.
    #[serde(default)]
    pub json_pointer: Option<String>,
    /// Date formats tried after ISO 8601 (`2024-08-15`), in chrono's syntax, e.g. `%d.%m.%Y`.
    #[serde(default = "default_date_formats")]
    pub date_formats: Vec<String>,
    /// bestand field -> column name in the file. Fields: see `FIELDS` and docs/configuration.md.
    pub columns: BTreeMap<String, String>,
    /// Time limit for fetching a URL, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Rows that share an id are one device: the first row's values win, later rows fill what
    /// it left empty, and the payload keeps every row. For IServ host lists, where a notebook
    /// with LAN and WLAN is entered twice under one name. Default: a repeated id fails the run.
    #[serde(default)]
    pub merge_duplicate_ids: bool,
    /// The school of every record that has no school column of its own (an IServ host list
    /// belongs to the one school its server serves).
    #[serde(default)]
    pub school: Option<String>,
}

/// How the file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Json,
}

fn default_date_formats() -> Vec<String> {
    vec!["%d.%m.%Y".to_string()]
}

fn default_timeout_secs() -> u64 {
    120
}

/// Why a file source cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum FileConfigError {
    #[error("give exactly one of `path` and `url`")]
    Location,
    #[error("`columns` maps unknown field '{0}' (known: {known})", known = FIELDS.join(", "))]
    UnknownField(String),
    #[error("cannot tell the format of '{0}' from its name; set `format = \"csv\"` or `\"json\"`")]
    UnknownFormat(String),
    #[error("the delimiter must be a single ASCII character")]
    Delimiter,
    #[error(transparent)]
    Url(#[from] UrlKeyError),
    #[error("cannot set up the HTTP client: {0}")]
    Http(String),
}

/// A CSV or JSON export as a source.
#[derive(Debug)]
pub struct FileSource {
    source_name: String,
    config: FileConfig,
    /// The path or link as labels and errors name it (a link without credentials or query).
    location: String,
    format: FileFormat,
    http: Option<HttpClient>,
}

impl FileSource {
    /// Checks the configuration. Reads nothing yet.
    pub fn new(
        config: FileConfig,
        source_name: impl Into<String>,
    ) -> Result<FileSource, FileConfigError> {
        // `written` is what the format is told from; `location` what labels and errors show.
        let (written, location) = match (&config.path, &config.url) {
            (Some(path), None) => {
                let path = path.to_string_lossy().into_owned();
                (path.clone(), path)
            }
            (None, Some(url)) => {
                // The link is fetched as written, query included (download links of file
                // shares carry one), but never shown whole.
                let parsed = url_keys::http_url("url", url)?;
                (url.clone(), display_url_without_query(&parsed))
            }
            _ => return Err(FileConfigError::Location),
        };
        if let Some(field) = config
            .columns
            .keys()
            .find(|field| !FIELDS.contains(&field.as_str()))
        {
            return Err(FileConfigError::UnknownField(field.clone()));
        }
        if config
            .delimiter
            .is_some_and(|delimiter| !delimiter.is_ascii())
        {
            return Err(FileConfigError::Delimiter);
        }
        let lower = written.to_lowercase();
        let format = match config.format {
            Some(format) => format,
            None if lower.ends_with(".csv") || lower.ends_with(".txt") => FileFormat::Csv,
            None if lower.ends_with(".json") => FileFormat::Json,
            None => return Err(FileConfigError::UnknownFormat(location)),
        };
        let http = match &config.url {
            Some(_) => Some(
                HttpClient::new(&HttpSettings {
                    timeout: Duration::from_secs(config.timeout_secs),
                    query_is_secret: true,
                    ..HttpSettings::default()
                })
                .map_err(|error| FileConfigError::Http(error.to_string()))?,
            ),
            None => None,
        };
        Ok(FileSource {
            source_name: source_name.into(),
            config,
            location,
            format,
            http,
        })
    }

    async fn read(&self) -> Result<Vec<u8>, FetchFailure> {
        if let (Some(http), Some(url)) = (&self.http, &self.config.url) {
            let response =
                http.send(|client| client.get(url))
                    .await
                    .map_err(|error| FetchFailure {
                        page: Some(self.location.clone()),
                        cause: error.to_string(),
                    })?;
            return Ok(response.body);
        }
        let path = self.config.path.clone().unwrap_or_default();
        tokio::fs::read(&path).await.map_err(|error| FetchFailure {
            page: Some(path.display().to_string()),
            cause: format!("cannot read the file: {error}"),
        })
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

/// One row as field name -> text, with where it came from.
struct Row {
    /// `line 5` (CSV, counting the header) or `item 5` (JSON), for messages.
    place: String,
    values: BTreeMap<String, String>,
    payload: String,
}

#[async_trait]
impl Connector for FileSource {
    async fn fetch(&self, sink: &PageSink) -> Result<u64, FetchFailure> {
        let body = self.read().await?;
        let location = self.location();
        let config = self.config.clone();
        let format = self.format;
        let rows = tokio::task::spawn_blocking(move || match format {
            FileFormat::Csv => csv_rows(&body, &config),
            FileFormat::Json => json_rows(&body, &config),
        })
        .await
        .map_err(|error| FetchFailure {
            page: Some(location.clone()),
            cause: format!("reading failed: {error}"),
        })?
        .map_err(|cause| FetchFailure {
            page: Some(location.clone()),
            cause,
        })?;

        let rows = if self.config.merge_duplicate_ids {
            merge_rows(rows, &self.config.id_column)
        } else {
            rows
        };
        let total = rows.len() as u64;
        let mut seen = HashSet::new();
        let mut records = Vec::with_capacity(PAGE_SIZE.min(rows.len()));
        let mut page_number = 0;
        for row in rows {
            let record = map_row(row, &self.config, &mut seen).map_err(|cause| FetchFailure {
                page: Some(location.clone()),
                cause,
            })?;
            records.push(record);
            if records.len() == PAGE_SIZE {
                sink.send(page(
                    &location,
                    page_number,
                    std::mem::take(&mut records),
                    total,
                ))
                .await?;
                page_number += 1;
            }
        }
        if !records.is_empty() {
            sink.send(page(&location, page_number, records, total))
                .await?;
        }
        tracing::info!(source = %self.source_name, records = total, "file source read");
        Ok(total)
    }
}

fn page(location: &str, number: usize, records: Vec<DeviceRecord>, total: u64) -> SourcePage {
    SourcePage {
        label: format!("{location} part {number}"),
        records,
        announced_total: Some(total),
    }
}

fn csv_rows(body: &[u8], config: &FileConfig) -> Result<Vec<Row>, String> {
    let text = tabular::decode(
        body,
        config.encoding,
        config.delimiter.map(|delimiter| delimiter as u8),
    )
    .map_err(|error| error.to_string())?;
    tracing::debug!(
        encoding = text.encoding.name(),
        delimiter = %char::from(text.delimiter).escape_default(),
        "file source CSV decoded"
    );
    let mut reader = text
        .reader_builder()
        .trim(csv::Trim::All)
        .from_reader(text.text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|error| format!("line 1: cannot read the header: {error}"))?
        .clone();
    for column in config
        .columns
        .values()
        .chain(std::iter::once(&config.id_column))
    {
        if !headers.iter().any(|header| header == column) {
            return Err(format!(
                "line 1: the header has no column '{column}' (it has: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index as u64 + 2;
        let record = record.map_err(|error| format!("line {line}: {error}"))?;
        let values: BTreeMap<String, String> = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.to_string(), tabular::unneutralise(v).to_string()))
            .collect();
        let payload = serde_json::to_string(&values).unwrap_or_else(|_| "{}".to_string());
        rows.push(Row {
            place: format!("line {line}"),
            values,
            payload,
        });
    }
    Ok(rows)
}

fn json_rows(body: &[u8], config: &FileConfig) -> Result<Vec<Row>, String> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("invalid JSON: {error}"))?;
    let array = match &config.json_pointer {
        Some(pointer) => document
            .pointer(pointer)
            .ok_or_else(|| format!("no value at '{pointer}'"))?,
        None => &document,
    };
    let items = array
        .as_array()
        .ok_or("the devices are not a JSON array (set `json_pointer`)")?;
    let mut rows = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let line = index as u64 + 1;
        let object = item
            .as_object()
            .ok_or_else(|| format!("item {line}: not an object"))?;
        let values = object
            .iter()
            .filter_map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text.trim().to_string(),
                    serde_json::Value::Null => return None,
                    other => other.to_string(),
                };
                Some((key.clone(), text))
            })
            .collect();
        rows.push(Row {
            place: format!("item {line}"),
            values,
            payload: item.to_string(),
        });
    }
    Ok(rows)
}

/// Folds rows with the same id into the first of them (see `FileConfig::merge_duplicate_ids`).
/// Rows without an id are kept as they are, for `map_row` to report.
fn merge_rows(rows: Vec<Row>, id_column: &str) -> Vec<Row> {
    let mut merged: Vec<(Row, Vec<String>)> = Vec::with_capacity(rows.len());
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for row in rows {
        let id = row
            .values
            .get(id_column)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty());
        let Some(id) = id else {
            merged.push((row, Vec::new()));
            continue;
        };
        match by_id.get(&id) {
            Some(&index) => {
                let (first, more) = &mut merged[index];
                for (column, value) in row.values {
                    let slot = first.values.entry(column).or_default();
                    if slot.trim().is_empty() {
                        *slot = value;
                    }
                }
                first.place = format!("{} and {}", first.place, row.place);
                more.push(row.payload);
            }
            None => {
                by_id.insert(id, merged.len());
                merged.push((row, Vec::new()));
            }
        }
    }
    merged
        .into_iter()
        .map(|(mut row, more)| {
            if !more.is_empty() {
                row.payload = format!("[{},{}]", row.payload, more.join(","));
            }
            row
        })
        .collect()
}

fn map_row(
    row: Row,
    config: &FileConfig,
    seen: &mut HashSet<String>,
) -> Result<DeviceRecord, String> {
    let place = row.place.clone();
    let id = row
        .values
        .get(&config.id_column)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty());
    let Some(id) = id else {
        return Err(format!(
            "{place}: the id column '{}' is empty",
            config.id_column
        ));
    };
    if !seen.insert(id.to_string()) {
        return Err(format!("{place}: id '{id}' appears twice in the file"));
    }
    let text = |field: &str| -> Option<String> {
        let column = config.columns.get(field)?;
        row.values
            .get(column)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let mut problems = Vec::new();
    let formats: Vec<&str> = config.date_formats.iter().map(String::as_str).collect();
    let date = |field: &str, problems: &mut Vec<String>| -> Option<NaiveDate> {
        let value = text(field)?;
        match normalize::date(&value, &formats) {
            Ok(date) => Some(date),
            Err(DateError::NotADate) => {
                problems.push(format!("{place}: {field} '{value}' is not a date"));
                None
            }
            Err(error) => {
                problems.push(format!("{place}: {field} '{value}': {error}"));
                None
            }
        }
    };
    let mut record = DeviceRecord {
        external_id: id.to_string(),
        name: text("name"),
        asset_tag: text("asset_tag"),
        serial_number: text("serial_number"),
        udid: text("udid"),
        imei: text("imei"),
        wifi_mac: text("wifi_mac"),
        manufacturer: text("manufacturer"),
        model: text("model"),
        model_identifier: text("model_identifier"),
        os_name: text("os_name"),
        os_version: text("os_version"),
        ..DeviceRecord::default()
    };
    if let Some(category) = text("category") {
        match category.parse::<DeviceCategory>() {
            Ok(category) => record.category = category,
            Err(_) => problems.push(format!("{place}: category '{category}' is not one of tablet, laptop, desktop, display, printer, other")),
        }
    }
    record.location.school = text("school").or_else(|| config.school.clone());
    record.location.building = text("building");
    record.location.room = text("room");
    record.purchase.order_number = text("order_number");
    record.purchase.purchase_date = date("purchase_date", &mut problems);
    record.purchase.supplier = text("supplier");
    record.purchase.warranty_end = date("warranty_end", &mut problems);
    record.purchase.currency = text("currency").map(|c| c.to_uppercase());
    if let Some(price) = text("price") {
        match money::parse_price(&price, config.price_notation) {
            Ok(read) => match (&read.currency, &record.purchase.currency) {
                (Some(named), Some(column)) if named != column => problems.push(format!(
                    "{place}: price '{price}' is in {named} but the currency column says {column}"
                )),
                _ => {
                    record.purchase.price = Some(read.amount);
                    if record.purchase.currency.is_none() {
                        record.purchase.currency = read.currency;
                    }
                }
            },
            Err(error) => {
                let hint = match error {
                    money::PriceError::Ambiguous { .. } => " or set `price_notation`",
                    _ => "",
                };
                problems.push(format!(
                    "{place}: price '{price}' cannot be read: {error}{hint}"
                ));
            }
        }
    }
    if let Some(years) = text("life_expectancy_years") {
        match years.parse::<i32>() {
            Ok(years) => record.purchase.life_expectancy_years = Some(years),
            Err(_) => problems.push(format!(
                "{place}: life_expectancy_years '{years}' is not a whole number"
            )),
        }
    }
    record.user.username = text("username");
    record.user.real_name = text("real_name");
    record.user.email = text("email");
    record.problems = problems;
    record.payload = row.payload;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_for_url(url: &str) -> Result<FileSource, FileConfigError> {
        let config: FileConfig = serde_json::from_value(serde_json::json!({
            "url": url, "format": "csv", "id_column": "id", "columns": {},
        }))
        .unwrap();
        FileSource::new(config, "inventar")
    }

    #[test]
    fn a_url_must_be_http_or_https_and_its_error_names_the_key_not_the_value() {
        for url in [
            "ftp://admin:geheim@files.example/export.csv",
            "admin:geheim@files.example/export.csv",
            "files.example/export.csv",
        ] {
            let error = source_for_url(url).unwrap_err().to_string();
            assert!(error.contains("`url`"), "{error}");
            assert!(
                !error.contains("geheim") && !error.contains("files.example"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_download_link_is_named_without_its_credentials_or_query() {
        let source =
            source_for_url("https://admin:geheim@cloud.example/s/abc/download?token=t0k3n#x")
                .unwrap();
        assert_eq!(source.location(), "https://cloud.example/s/abc/download?…");
        assert_eq!(
            source.config.url.as_deref(),
            Some("https://admin:geheim@cloud.example/s/abc/download?token=t0k3n#x"),
            "fetched as written"
        );
        let plain = source_for_url("https://cloud.example/inventar.csv").unwrap();
        assert_eq!(plain.location(), "https://cloud.example/inventar.csv");
    }
}
