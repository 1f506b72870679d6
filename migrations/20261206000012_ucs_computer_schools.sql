-- UCS@school computers synced before the device run resolved their school OU as the person run
-- does (school_map, school number attribute, display name) were left at no school. Their records
-- have not changed, so their unchanged content hash would keep the next run from looking at them
-- again: a zero byte in front of the hash of every ucs_ldap link (and of its payload row, so the
-- payload stays joined to its link) makes the next device run apply each computer once more and
-- place it at its school. A hash is 16 bytes, so a 17-byte one matches no record.
update source_payload set content_hash = '\x00'::bytea || content_hash
where source_id in (select source_id from source where kind = 'ucs_ldap');

update source_link set content_hash = '\x00'::bytea || content_hash
where source_id in (select source_id from source where kind = 'ucs_ldap');
