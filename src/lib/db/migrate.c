/*
 * Migrations for sl_db: applies a component's embedded, numbered scripts in
 * one transaction and records them with a checksum in schema_migrations, so
 * a script edited after it ran is reported at start instead of drifting.
 * The scripts come from shoal_embed_migrations() (cmake/migrations.cmake).
 */
#include "db/db_int.h"

#include <shoal/clock.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generated from src/lib/db/migrations/ at build time. */
extern const sl_migration_set sl_migrations_shoal;

const sl_migration_set *sl_db_lib_migrations(void)
{
    return &sl_migrations_shoal;
}

/* FNV-1a 64 as 16 hex digits: detects edits, not an integrity seal. */
static void checksum(const char *sql, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* The script of `set` for `version` on this backend: its own, else the portable one, else NULL. */
static const sl_migration *pick(const sl_db *db, const sl_migration_set *set, int version)
{
    const char *mine = db->vt->name;
    const sl_migration *generic = NULL;
    for (size_t i = 0; i < set->count; i++) {
        const sl_migration *m = &set->items[i];
        if (m->version != version) continue;
        if (m->backend == NULL)
            generic = m;
        else if (strcmp(m->backend, mine) == 0)
            return m;
    }
    return generic;
}

static int known_version(const sl_migration_set *set, int version)
{
    for (size_t i = 0; i < set->count; i++)
        if (set->items[i].version == version) return 1;
    return 0;
}

/* Checks the recorded migrations of the component against `set`; sets done[version index]. */
static int check_applied(sl_db *db, const sl_migration_set *set, const int *versions, size_t nv,
                         unsigned char *done)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db,
                           "SELECT version, checksum FROM schema_migrations WHERE component = ? "
                           "ORDER BY version",
                           &st);
    if (rc) return rc;
    rc = sl_db_bind_text(st, 1, set->component, SIZE_MAX);
    while (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) {
        int64_t v = sl_db_column_int64(st, 0);
        const char *sum = sl_db_column_text(st, 1, NULL);
        if (v <= 0 || v > INT32_MAX || !known_version(set, (int)v)) {
            rc = sl__db_set_err(db, SL_ESTATE,
                                "%s: applied migration %lld is unknown to this binary",
                                set->component, (long long)v);
            break;
        }
        const sl_migration *m = pick(db, set, (int)v);
        char want[17];
        checksum(m ? m->sql : "", want);
        if (strcmp(want, sum) != 0) {
            rc = sl__db_set_err(db, SL_ESTATE,
                                "%s: migration %lld (%s) changed after it was applied "
                                "(checksum %s, recorded %s)",
                                set->component, (long long)v, m ? m->name : "?", want, sum);
            break;
        }
        for (size_t i = 0; i < nv; i++)
            if (versions[i] == (int)v) done[i] = 1;
        rc = 0;
    }
    sl_db_stmt_done(st);
    return rc == SL_DB_DONE ? 0 : rc;
}

static int record(sl_db *db, const sl_migration_set *set, int version, const char *name,
                  const char *sql)
{
    char sum[17];
    checksum(sql, sum);
    sl_db_stmt *st;
    int rc = sl_db_prepare(db,
                           "INSERT INTO schema_migrations (component, version, name, checksum, "
                           "applied_ms) VALUES (?, ?, ?, ?, ?)",
                           &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, set->component, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_int64(st, 2, version)) == 0 &&
        (rc = sl_db_bind_text(st, 3, name, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, 4, sum, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_int64(st, 5, sl_clock_wall_ms(sl_clock_system()))) == 0)
        rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc == SL_DB_DONE ? 0 : rc;
}

/* The distinct versions of `set`, ascending, into versions[] (capacity set->count). */
static size_t sorted_versions(const sl_migration_set *set, int *versions)
{
    size_t n = 0;
    for (size_t i = 0; i < set->count; i++) {
        int v = set->items[i].version, seen = 0;
        for (size_t j = 0; j < n; j++)
            seen |= versions[j] == v;
        if (seen) continue;
        size_t k = n++;
        while (k > 0 && versions[k - 1] > v) {
            versions[k] = versions[k - 1];
            k--;
        }
        versions[k] = v;
    }
    return n;
}

static int apply_all(sl_db *db, const sl_migration_set *set, int *versions, unsigned char *done,
                     int *applied)
{
    int rc = sl_db_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                            " component TEXT NOT NULL, version BIGINT NOT NULL,"
                            " name TEXT NOT NULL, checksum TEXT NOT NULL,"
                            " applied_ms BIGINT NOT NULL, PRIMARY KEY (component, version))");
    if (rc) return rc;
    size_t nv = sorted_versions(set, versions);
    if ((rc = check_applied(db, set, versions, nv, done)) != 0) return rc;
    for (size_t i = 0; i < nv; i++) {
        if (done[i]) continue;
        const sl_migration *m = pick(db, set, versions[i]);
        if (m && m->sql[0] != '\0' && (rc = sl_db_exec(db, m->sql)) != 0) {
            char why[SL_DB_ERRMSG_MAX];
            snprintf(why, sizeof why, "%s", db->errmsg);
            return sl__db_set_err(db, rc, "%s: migration %s failed: %s", set->component, m->name,
                                  why);
        }
        rc = record(db, set, versions[i], m ? m->name : "(none for this backend)", m ? m->sql : "");
        if (rc) return rc;
        (*applied)++;
    }
    return 0;
}

int sl_db_migrate(sl_db *db, const sl_migration_set *set, int *applied)
{
    int count = 0;
    if (applied) *applied = 0;
    if (db->in_tx) return sl__db_set_err(db, SL_ESTATE, "migrate inside a transaction");
    for (size_t i = 0; i < set->count; i++)
        if (set->items[i].version <= 0 || set->items[i].sql == NULL)
            return sl__db_set_err(db, SL_EINVAL, "bad migration entry %zu", i);
    int *versions = calloc(set->count + 1, sizeof *versions);
    unsigned char *done = calloc(set->count + 1, 1);
    int rc = SL_ENOMEM;
    if (versions == NULL || done == NULL) goto out;
    if ((rc = sl_db_begin(db)) != 0) goto out;
    if (db->vt->migrate_lock_sql && (rc = sl_db_exec(db, db->vt->migrate_lock_sql)) != 0) {
        sl_db_rollback(db);
        goto out;
    }
    rc = apply_all(db, set, versions, done, &count);
    if (rc == 0) {
        rc = sl_db_commit(db);
    } else {
        char keep[SL_DB_ERRMSG_MAX];
        memcpy(keep, db->errmsg, sizeof keep);
        sl_db_rollback(db);
        memcpy(db->errmsg, keep, sizeof keep);
    }
    if (rc == 0 && applied) *applied = count;
out:
    free(versions);
    free(done);
    return rc;
}
