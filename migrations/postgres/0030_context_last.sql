-- The context last in the row, after the columns a step changes (issue: the engine core,
-- rebuilt for cost, WAL per step).
--
-- An update whose new row version stays on its page writes into the WAL only the bytes from
-- the first that differs from the old version to the last that does (PostgreSQL's prefix
-- and suffix compression of heap updates; 0024 put what steps change at the end of the row
-- for it). Since 0024 the context came first of those columns, so a step's update logged the
-- whole context and every column after it: `updated_at`, the row's last bytes, changes with
-- every step, and nothing of the context could count as an unchanged suffix.
--
-- A context is stored as `jsonb`: its top-level keys (sorted by length: `phase`,
-- `borrower`, `definition`, `started_at`, `workflow_id`, and a loan's), then their values in
-- the same order. What a step changes is mostly its phase, the first value; the borrower or
-- the loan changes now and then, the definition's pin, the start and the id never. With the
-- context last, a step's update logs from `state` (its first column that changes) to the
-- last byte of the context that changes, and the values after that are an unchanged suffix.
-- A context compressed in its row (lz4, once the row passes 1.5 KB: 0017), as an
-- onboarding's usually is, keeps less of an unchanged end: under the bench, about 100 bytes
-- less WAL a step. A claim, a wake-up and a callback's wake-up leave the context as it was
-- and log what they change, as since 0024.
--
-- The column moves as 0024 moved its columns (see there): a new one at the end, the values
-- copied in one rewrite of the rows, every attribute, index, constraint and view that reads
-- it carried over. 0024 did that in an anonymous block; it is a function here, kept for a
-- later move, executable by the schema's owner only.
--
-- Workers of this build wait for the migration and go on. Workers of the build before name
-- the columns they read and write (0024), so they too go on; roll them all the same, as
-- after 0024. SQLite writes whole pages; its rows stay as they are.

CREATE FUNCTION finflow_move_columns_to_end(p_table regclass, p_columns text[])
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_table regclass := p_table;
    v_columns text[] := p_columns;
    v_attnums int2[];
    v_views jsonb;
    v_recreate text[];
    v_view jsonb;
    v_old record;
    v_stmt text;
BEGIN
    SELECT array_agg(attnum) INTO v_attnums FROM pg_attribute
    WHERE attrelid = v_table AND attname = ANY (v_columns) AND attnum > 0 AND NOT attisdropped;
    IF cardinality(v_attnums) IS DISTINCT FROM cardinality(v_columns) THEN
        RAISE EXCEPTION 'moving columns of %: not all of % exist', v_table, v_columns;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_constraint k
               WHERE k.conrelid = v_table AND k.contype <> 'c' AND k.conkey && v_attnums) THEN
        RAISE EXCEPTION 'moving columns of %: a key reads one of %', v_table, v_columns;
    END IF;

    -- The views that read the table (with their options, comments and grants), the indexes
    -- and the check constraints that read a moved column (with their comments): kept as
    -- statements, then dropped.
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'drop', format('DROP VIEW %s', c.oid::regclass),
               'create', format('CREATE VIEW %s%s AS %s', c.oid::regclass,
                   CASE WHEN c.reloptions IS NULL THEN ''
                        ELSE format(' WITH (%s)', array_to_string(c.reloptions, ', ')) END,
                   rtrim(pg_get_viewdef(c.oid), ';')),
               'comment', format('COMMENT ON VIEW %s IS %L', c.oid::regclass,
                   obj_description(c.oid, 'pg_class')),
               'grants', coalesce((
                   SELECT jsonb_agg(format('GRANT %s ON %s TO %s', x.privilege_type,
                       c.oid::regclass, CASE WHEN x.grantee = 0 THEN 'PUBLIC'
                           ELSE quote_ident(pg_get_userbyid(x.grantee)) END))
                   FROM aclexplode(c.relacl) x WHERE x.grantee <> c.relowner), '[]'))
               ORDER BY c.oid), '[]')
    INTO v_views
    FROM pg_class c
    WHERE c.relkind = 'v' AND c.oid IN (
        SELECT r.ev_class FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
        WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = v_table
          AND r.ev_class <> v_table);
    FOR v_view IN SELECT * FROM jsonb_array_elements(v_views) LOOP
        EXECUTE v_view->>'drop';
    END LOOP;

    v_recreate := '{}';
    FOR v_old IN
        SELECT pg_get_indexdef(i.indexrelid) AS def, i.indexrelid::regclass::text AS name,
               obj_description(i.indexrelid, 'pg_class') AS comment
        FROM pg_index i
        WHERE i.indrelid = v_table
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
          AND EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
                        AND d.refobjid = v_table AND d.refobjsubid = ANY (v_attnums))
        ORDER BY i.indexrelid
    LOOP
        v_recreate := v_recreate || v_old.def;
        IF v_old.comment IS NOT NULL THEN
            v_recreate := v_recreate || format('COMMENT ON INDEX %s IS %L', v_old.name, v_old.comment);
        END IF;
        EXECUTE format('DROP INDEX %s', v_old.name);
    END LOOP;
    FOR v_old IN
        SELECT k.conname AS name, pg_get_constraintdef(k.oid) AS def,
               obj_description(k.oid, 'pg_constraint') AS comment
        FROM pg_constraint k
        WHERE k.conrelid = v_table AND k.contype = 'c' AND k.conkey && v_attnums
        ORDER BY k.oid
    LOOP
        v_recreate := v_recreate
            || format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_table, v_old.name, v_old.def);
        IF v_old.comment IS NOT NULL THEN
            v_recreate := v_recreate || format('COMMENT ON CONSTRAINT %I ON %s IS %L',
                v_old.name, v_table, v_old.comment);
        END IF;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', v_table, v_old.name);
    END LOOP;

    -- What each column is besides its type (storage, compression, default, NOT NULL,
    -- comment), for the new one.
    SELECT v_recreate || format('ALTER TABLE %s %s', v_table, string_agg(concat_ws(', ',
               format('ALTER COLUMN %I SET STORAGE %s', c, CASE a.attstorage
                   WHEN 'p' THEN 'PLAIN' WHEN 'm' THEN 'MAIN' WHEN 'e' THEN 'EXTERNAL'
                   ELSE 'EXTENDED' END),
               CASE a.attcompression WHEN 'l' THEN format('ALTER COLUMN %I SET COMPRESSION lz4', c)
                   WHEN 'p' THEN format('ALTER COLUMN %I SET COMPRESSION pglz', c) END,
               CASE WHEN d.adbin IS NOT NULL THEN format('ALTER COLUMN %I SET DEFAULT %s', c,
                   pg_get_expr(d.adbin, d.adrelid)) END,
               CASE WHEN a.attnotnull THEN format('ALTER COLUMN %I SET NOT NULL', c) END),
               ', ' ORDER BY o))
           || array_agg(format('COMMENT ON COLUMN %s.%I IS %L', v_table, c,
                  col_description(v_table, a.attnum)) ORDER BY o)
    INTO v_recreate
    FROM unnest(v_columns) WITH ORDINALITY AS t(c, o)
    JOIN pg_attribute a ON a.attrelid = v_table AND a.attname = c
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum;

    -- Each column renamed and made nullable; a new one of its type added at the end, in the
    -- order given; the values copied and the old copies emptied in one rewrite of the rows;
    -- the old columns dropped.
    FOR v_stmt IN
        SELECT format('ALTER TABLE %s RENAME COLUMN %I TO %I', v_table, c, c || '_before_move')
        FROM unnest(v_columns) AS c
    LOOP
        EXECUTE v_stmt;
    END LOOP;
    EXECUTE (
        SELECT format('ALTER TABLE %s %s', v_table, string_agg(format(
                   'ALTER COLUMN %I DROP NOT NULL, ADD COLUMN %I %s', c || '_before_move', c,
                   format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY o))
        FROM unnest(v_columns) WITH ORDINALITY AS t(c, o)
        JOIN pg_attribute a ON a.attrelid = v_table AND a.attname = c || '_before_move');
    EXECUTE (
        SELECT format('UPDATE %s SET %s', v_table, string_agg(
                   format('%I = %I, %I = NULL', c, c || '_before_move', c || '_before_move'), ', '))
        FROM unnest(v_columns) AS c);
    EXECUTE (
        SELECT format('ALTER TABLE %s %s', v_table,
                      string_agg(format('DROP COLUMN %I', c || '_before_move'), ', '))
        FROM unnest(v_columns) AS c);

    -- Then the indexes, the check constraints, the columns' attributes and the views.
    FOREACH v_stmt IN ARRAY v_recreate LOOP
        EXECUTE v_stmt;
    END LOOP;
    FOR v_view IN SELECT * FROM jsonb_array_elements(v_views) LOOP
        EXECUTE v_view->>'create';
        EXECUTE v_view->>'comment';
        FOR v_stmt IN SELECT jsonb_array_elements_text(v_view->'grants') LOOP
            EXECUTE v_stmt;
        END LOOP;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION finflow_move_columns_to_end(regclass, text[]) IS
    'Move columns of a table to the end of its rows, in the order given, each with its type, default, NOT NULL, storage, compression and comment, and the indexes, check constraints and views that read them (0024''s block; migration 0030).';
REVOKE EXECUTE ON FUNCTION finflow_move_columns_to_end(regclass, text[]) FROM PUBLIC;

SELECT finflow_move_columns_to_end('workflows', ARRAY['context']);
