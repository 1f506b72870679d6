//! `--format csv` as staff open it in a spreadsheet: names the MDM delivered never run as
//! formulas, and what bestand writes reads back the same.

use bestand_cli::output::{write_list, Format};
use bestand_core::access::Scope;
use bestand_core::store::devices;
use bestand_core::tabular;

use crate::support::*;

#[tokio::test]
async fn devices_list_as_csv_neutralises_formula_cells_and_reads_back_the_same() {
    let db = test_db().await;
    let source_ref = &musterstadt(&db.pool, &["jamf"]).await[0];
    let names = [
        "=HYPERLINK(\"http://evil.example\",\"iPad\")",
        "+49 30 1234",
        "-5",
        "@SUM(A1:A9)",
        "'=already quoted",
        "iPad 5a",
    ];
    let records = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut record = ipad(&format!("mobile:{i}"), &format!("SER{i:05}"));
            record.name = Some((*name).to_string());
            record
        })
        .collect();
    sync_records(&db.pool, &clock(), source_ref, records).await;
    let list = devices::list_devices(&db.pool, &Scope::All, &devices::DeviceFilter::default())
        .await
        .unwrap();
    assert_eq!(list.len(), names.len());

    let mut out = Vec::new();
    write_list(&mut out, &list, Format::Csv).unwrap();
    let written = String::from_utf8(out.clone()).unwrap();
    assert!(written.contains("\"'=HYPERLINK("), "{written}");
    assert!(written.contains(",'-5,"), "{written}");

    // Read back through the importers' reader: no cell starts a formula, and without the
    // neutralising quote every name is what the source delivered.
    let text = tabular::decode(&out, None, None).unwrap();
    let mut reader = text.reader_builder().from_reader(text.text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let name_at = headers.iter().position(|h| h == "name").unwrap();
    let mut read = Vec::new();
    for record in reader.records() {
        let record = record.unwrap();
        for cell in &record {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a cell runs as a formula: {cell:?} in\n{written}"
            );
        }
        read.push(tabular::unneutralise(&record[name_at]).to_string());
    }
    read.sort();
    let mut expected: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    expected.sort();
    assert_eq!(read, expected);
}
