-- A full sync writes a payload and a normalized record for every device: make that cheap.
-- The normalized record is only ever read back whole (for `devices show`), so `json` (validated
-- text) serves it without jsonb's conversion cost; the raw payload stays jsonb to be queried,
-- compressed with lz4, which is several times faster than the default pglz.
alter table source_link alter column normalized type json using normalized::json;
alter table source_link alter column payload set compression lz4;
