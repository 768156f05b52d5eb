-- What a step changes in its workflow's row sits at the end of the row (issue: the engine
-- core, rebuilt for cost, WAL per step).
--
-- An update whose new row version stays on its page writes into the WAL only the bytes
-- between the first and the last that differ from the old version (PostgreSQL's prefix and
-- suffix compression of heap updates). The columns a step changes were spread through the
-- row: `status` and `state` (columns 6 and 7) before the context, `version` and
-- `updated_at` (18 and 20) after it and the input's pointer. So an update that changes a
-- column on each side carried the context, about 1.1 KB, even one that leaves the context
-- alone: a claim (status, lease, version), a step that changes only its state. (A callback
-- making its workflow due changes `next_run_at` and `updated_at`, both after it.)
--
-- The context and the columns that change with steps move to the end of the row, in this
-- order: the context; what a step's commit sets (state, attempt, waiting_for, deadline,
-- last_error, finished_at); then what claims and wake-ups set too (status, lease_owner,
-- lease_until, version, next_run_at, updated_at). A claim then logs the few bytes from
-- `status` on, as a wake-up did already; a step that changes the context logs it and what
-- follows, as before. What stays in front changes once in a workflow's life (the
-- definition pinned by its first step) or never (keys, input, identity); `facts` (about one
-- step in five) stays where it is, in front of its generated ids.
--
-- PostgreSQL cannot reorder columns; a column is moved by adding a new one at the end,
-- copying the values and dropping the old one. Every attribute goes with it (type, default,
-- NOT NULL, storage, compression, comment), as do the indexes and check constraints that read
-- it and the views that show it (dropped and created again from their own definitions,
-- with their comments and grants). One UPDATE rewrites every row (the old copies' values set
-- to NULL in the same statement, so no row keeps them), under the exclusive lock the ALTERs
-- take; nothing stored changes. The old row versions are left to (auto)vacuum. SQLite writes
-- whole pages; its rows stay as they are.
--
-- Workers of this build wait for the migration and go on (their claims name the columns they
-- return). A worker of the build before claims with `RETURNING w.*`: on a connection that
-- prepared that claim before this migration PostgreSQL refuses to run it again ("cached plan
-- must not change result type") until the connection closes, so roll the workers right after
-- migrating; the workflows stay due meanwhile.

-- One block, written for any table and columns (the two set at its top), so that what it
-- carries over is not a list of this table's indexes and views to keep in step by hand.
DO $$
DECLARE
    v_table regclass := 'workflows';
    v_columns text[] := ARRAY[
        'context',
        'state', 'attempt', 'waiting_for', 'deadline', 'last_error', 'finished_at',
        'status', 'lease_owner', 'lease_until', 'version', 'next_run_at', 'updated_at'
    ];
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
