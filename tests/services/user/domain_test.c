/*
 * Unit tests of the user context's pure rules (src/services/user/domain.c):
 * email normalisation and syntax, name and password policy, read access,
 * token claims, read-your-writes, Retry-After rounding, event data.
 */
#include "domain.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static int norm(const char *in, char *out)
{
    const char *why = NULL;
    int rc = user_email_normalize(in, strlen(in), out, &why);
    if (rc != 0) {
        assert_non_null(why);
        assert_null(strstr(why, in[0] ? in : "\x01")); /* the message never echoes the input */
    }
    return rc;
}

static void test_email_normalised(void **state)
{
    (void)state;
    char out[USER_EMAIL_MAX + 1];
    assert_int_equal(norm("  Ann.Lee+shop@Example.COM\t\n", out), 0);
    assert_string_equal(out, "ann.lee+shop@example.com");
    assert_int_equal(norm("a@b.co", out), 0);
    assert_string_equal(out, "a@b.co");
    assert_int_equal(norm("o'neil_{x}@sub-1.example.org", out), 0);
    assert_string_equal(out, "o'neil_{x}@sub-1.example.org");
}

static void test_email_rejected(void **state)
{
    (void)state;
    char out[USER_EMAIL_MAX + 1];
    const char *bad[] = {
        "",
        "   ",
        "plain",
        "@example.com",
        "ann@",
        "ann@@example.com",
        "ann@b@example.com",
        "ann lee@example.com",
        "ann@exa mple.com",
        "ann\x01@example.com",
        "ann@localhost",
        "ann@example..com",
        "ann@.example.com",
        "ann@example.com.",
        "ann@-example.com",
        "ann@example-.com",
        ".ann@example.com",
        "ann.@example.com",
        "an..n@example.com",
        "ann(x)@example.com",
        "\"ann\"@example.com",
        "ann@exa_mple.com",
        "jos\xc3\xa9@example.com",
        "ann@example.com\x7f",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (norm(bad[i], out) == 0) fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(out[0], '\0');
    }
}

static void test_email_lengths(void **state)
{
    (void)state;
    char in[400], out[USER_EMAIL_MAX + 1];
    /* Local part: 64 is the limit. */
    memset(in, 'a', 64);
    strcpy(in + 64, "@example.com");
    assert_int_equal(norm(in, out), 0);
    memset(in, 'a', 65);
    strcpy(in + 65, "@example.com");
    assert_int_equal(norm(in, out), SL_EINVAL);
    /* Whole address: 254 accepted, 255 refused (labels of 63). */
    char dom[300];
    snprintf(dom, sizeof dom, "%.63s.%.63s.%.63s.%.50s",
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
             "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
             "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
             "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
    size_t dl = strlen(dom); /* 63*3 + 50 + 3 = 242 */
    size_t local = 254 - 1 - dl;
    memset(in, 'a', local);
    in[local] = '@';
    strcpy(in + local + 1, dom);
    assert_int_equal(strlen(in), 254);
    assert_int_equal(norm(in, out), 0);
    memmove(in + 1, in, strlen(in) + 1);
    in[0] = 'a';
    assert_int_equal(strlen(in), 255);
    assert_int_equal(norm(in, out), SL_EINVAL);
    /* A label of 64 characters. */
    memset(in, 'x', 64);
    strcpy(in + 64, ".com");
    char addr[100];
    snprintf(addr, sizeof addr, "a@%.68s", in);
    assert_int_equal(norm(addr, out), SL_EINVAL);
}

static void test_name_policy(void **state)
{
    (void)state;
    char out[USER_NAME_MAX_BYTES + 1];
    const char *why;
    assert_int_equal(user_name_check("  Ann Lee ", 10, out, &why), 0);
    assert_string_equal(out, "Ann Lee");
    assert_int_equal(user_name_check("   ", 3, out, &why), SL_EINVAL);
    assert_int_equal(user_name_check("", 0, out, &why), SL_EINVAL);
    assert_int_equal(user_name_check("a\tb", 3, out, &why), SL_EINVAL);
    assert_int_equal(user_name_check("a\x7f", 2, out, &why), SL_EINVAL);
    assert_int_equal(user_name_check("a\xc2\x85", 3, out, &why), SL_EINVAL); /* C1 NEL */
    assert_int_equal(user_name_check("\xff", 1, out, &why), SL_EINVAL);
    /* 100 characters of two bytes each pass; 101 do not. */
    char in[300];
    for (int i = 0; i < 101; i++)
        memcpy(in + 2 * i, "\xc3\xa9", 2);
    assert_int_equal(user_name_check(in, 200, out, &why), 0);
    assert_int_equal(strlen(out), 200);
    assert_int_equal(user_name_check(in, 202, out, &why), SL_EINVAL);
    assert_string_equal(why, "must be at most 100 characters");
}

static void test_password_policy(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_int_equal(user_password_check("1234567", 7, &why), SL_EINVAL);
    assert_string_equal(why, "must be at least 8 characters");
    assert_int_equal(user_password_check("12345678", 8, &why), 0);
    assert_int_equal(user_password_check("        ", 8, &why), 0); /* length is the rule */
    /* Characters, not bytes: 7 two-byte characters are too short, 8 are fine. */
    assert_int_equal(
        user_password_check("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 14, &why),
        SL_EINVAL);
    assert_int_equal(
        user_password_check("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 16,
                            &why),
        0);
    char big[600];
    memset(big, 'p', sizeof big);
    assert_int_equal(user_password_check(big, 128, &why), 0);
    assert_int_equal(user_password_check(big, 129, &why), SL_EINVAL);
    assert_string_equal(why, "must be at most 128 characters");
    assert_int_equal(user_password_check(big, 600, &why), SL_EINVAL);
    assert_int_equal(user_password_check("abcdefg\xff", 8, &why), SL_EINVAL);
}

static void test_roles_ids_access(void **state)
{
    (void)state;
    assert_true(user_role_valid("customer"));
    assert_true(user_role_valid("admin"));
    assert_false(user_role_valid("Admin"));
    assert_false(user_role_valid("service"));
    assert_false(user_role_valid(NULL));
    const char *id = "01a22234-d416-7a29-8db6-6e35e1172789";
    assert_true(user_id_valid(id, strlen(id)));
    assert_false(user_id_valid("01A22234-d416-7a29-8db6-6e35e1172789", 36));
    assert_false(user_id_valid("01a22234-d416-7a29-8db6-6e35e117278", 35));
    assert_false(user_id_valid("01a22234xd416-7a29-8db6-6e35e1172789", 36));
    assert_false(user_id_valid("../../etc/passwd", 16));
    assert_true(user_may_read(id, "customer", id));
    assert_false(user_may_read("other", "customer", id));
    assert_true(user_may_read("other", "admin", id));
    assert_true(user_may_read("order-svc", "service", id));
    assert_false(user_may_read(NULL, "admin", id));
}

static void test_claims(void **state)
{
    (void)state;
    sl_jwt_claims c;
    assert_int_equal(user_claims_make("u1", "customer", "shoal", 1000, 3600, &c), 0);
    assert_string_equal(c.sub, "u1");
    assert_string_equal(c.role, "customer");
    assert_string_equal(c.iss, "shoal");
    assert_int_equal(c.iat, 1000);
    assert_int_equal(c.exp, 4600);
    assert_null(c.extra);
    assert_int_equal(user_claims_make("", "customer", "shoal", 1000, 3600, &c), SL_EINVAL);
    assert_int_equal(user_claims_make("u1", "root", "shoal", 1000, 3600, &c), SL_EINVAL);
    assert_int_equal(user_claims_make("u1", "admin", "", 1000, 3600, &c), SL_EINVAL);
    assert_int_equal(user_claims_make("u1", "admin", "shoal", 1000, 0, &c), SL_EINVAL);
    assert_int_equal(user_claims_make("u1", "admin", "shoal", 1000, 8 * 86400, &c), SL_EINVAL);

    /* The claims sign and verify as a token with the same members. */
    sl_auth_key *k;
    assert_int_equal(sl_auth_key_generate(&k), 0);
    assert_int_equal(user_claims_make("u1", "admin", "shoal", 1795869296, 60, &c), 0);
    char *tok = NULL;
    assert_int_equal(sl_jwt_sign(k, &c, &tok, NULL), 0);
    sl_keyset *ks;
    assert_int_equal(sl_keyset_new(&ks), 0);
    assert_int_equal(sl_keyset_add(ks, k), 0);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, (int64_t)1795869300 * 1000000000);
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o, &fc.clock);
    o.issuer = "shoal";
    sl_jwt_verified v;
    sl_jwt_reason why;
    assert_int_equal(sl_jwt_verify(ks, tok, strlen(tok), &o, &v, &why), 0);
    assert_string_equal(v.sub, "u1");
    assert_string_equal(v.role, "admin");
    assert_int_equal(v.exp - v.iat, 60);
    sl_jwt_verified_deinit(&v);
    free(tok);
    sl_keyset_free(ks);
    sl_auth_key_free(k);
}

static void test_position_and_retry_after(void **state)
{
    (void)state;
    assert_true(user_position_reached(0, 0, -1));
    assert_true(user_position_reached(5, 5, -1));
    assert_false(user_position_reached(6, 5, -1));
    assert_true(user_position_reached(6, 5, 6)); /* the row already holds that write */
    assert_false(user_position_reached(7, 5, 6));
    assert_int_equal(user_retry_after_s(1), 1);
    assert_int_equal(user_retry_after_s(1000), 1);
    assert_int_equal(user_retry_after_s(1001), 2);
    assert_int_equal(user_retry_after_s(12000), 12);
}

static void test_event_data_round_trip(void **state)
{
    (void)state;
    user_state u = {.id = "01a22234-d416-7a29-8db6-6e35e1172789",
                    .email = "ann@example.com",
                    .name = "Ann",
                    .role = "customer",
                    .created_at = "2026-11-28T12:00:00.000Z",
                    .updated_at = "2026-11-28T12:00:01.000Z",
                    .position = 42};
    json_t *d = user_event_data(&u);
    assert_non_null(d);
    /* What the payment service needs to open a wallet. */
    const char *need[] = {"user_id", "email", "name", "role", "created_at"};
    for (size_t i = 0; i < 5; i++)
        assert_true(json_is_string(json_object_get(d, need[i])));
    user_state back;
    char reason[256];
    assert_int_equal(user_event_parse(d, u.id, &back, reason, sizeof reason), 0);
    assert_memory_equal(&back, &u, sizeof u);
    /* Wrong subject, bad role, bad position, missing field, not an object. */
    assert_int_equal(
        user_event_parse(d, "01a22234-d416-7a29-8db6-000000000000", &back, reason, sizeof reason),
        SL_EPARSE);
    json_object_set_new(d, "role", json_string("root"));
    assert_int_equal(user_event_parse(d, NULL, &back, reason, sizeof reason), SL_EPARSE);
    assert_non_null(strstr(reason, "role"));
    json_object_set_new(d, "role", json_string("admin"));
    json_object_set_new(d, "position", json_real(3.0));
    assert_int_equal(user_event_parse(d, NULL, &back, reason, sizeof reason), SL_EPARSE);
    json_object_set_new(d, "position", json_integer(0));
    assert_int_equal(user_event_parse(d, NULL, &back, reason, sizeof reason), SL_EPARSE);
    json_object_set_new(d, "position", json_integer(3));
    json_object_del(d, "email");
    assert_int_equal(user_event_parse(d, NULL, &back, reason, sizeof reason), SL_EPARSE);
    assert_non_null(strstr(reason, "email"));
    json_decref(d);
    json_t *arr = json_array();
    assert_int_equal(user_event_parse(arr, NULL, &back, reason, sizeof reason), SL_EPARSE);
    assert_int_equal(user_event_parse(NULL, NULL, &back, reason, sizeof reason), SL_EPARSE);
    json_decref(arr);
}

static void test_login_throttle(void **state)
{
    (void)state;
    const user_login_policy p = {.account_free = 3,
                                 .account_base_ms = 1000,
                                 .account_max_ms = 8000,
                                 .client_free = 5,
                                 .client_base_ms = 10000,
                                 .client_max_ms = 3600000,
                                 .window_ms = 900000,
                                 .global_budget = 8,
                                 .global_window_ms = 60000};
    assert_int_equal(user_login_backoff_ms(2, 3, 1000, 8000), 0);
    assert_int_equal(user_login_backoff_ms(3, 3, 1000, 8000), 1000);
    assert_int_equal(user_login_backoff_ms(5, 3, 1000, 8000), 4000);
    assert_int_equal(user_login_backoff_ms(60, 3, 1000, 8000), 8000);

    user_login_counter acct = {0}, atk = {0}, owner = {0}, g = {0};
    int64_t now = 1000000, wait = 0;
    /* Three failures are free; the third starts the account's backoff. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(user_login_admit(&p, now, &acct, &atk, &g, &wait), 0);
    assert_int_equal(acct.failures, 3);
    assert_int_equal(user_login_admit(&p, now, &acct, &atk, &g, &wait), SL_ELIMIT);
    assert_int_equal(wait, 1000);
    assert_int_equal(acct.failures, 3); /* a refusal counts nothing */
    /* The owner, from an address with no failures, still gets through, and a success resets
     * the account but only takes back the owner's own provisional failure. */
    assert_int_equal(user_login_admit(&p, now, &acct, &owner, &g, &wait), 0);
    user_login_succeeded(&p, &acct, &owner, &g);
    assert_int_equal(acct.failures, 0);
    assert_int_equal(owner.failures, 0);
    assert_int_equal(atk.failures, 3);
    /* The attacker's own account cannot wash its address: a success takes back one. */
    user_login_counter own = {0};
    assert_int_equal(user_login_admit(&p, now, &own, &atk, &g, &wait), 0);
    user_login_succeeded(&p, &own, &atk, &g);
    assert_int_equal(atk.failures, 3);
    /* The client's long backoff after client_free failures, whatever the accounts. */
    user_login_counter x = {0}, y = {0};
    assert_int_equal(user_login_admit(&p, now, &x, &atk, &g, &wait), 0);
    assert_int_equal(user_login_admit(&p, now, &y, &atk, &g, &wait), 0);
    assert_int_equal(atk.failures, 5);
    user_login_counter z = {0};
    assert_int_equal(user_login_admit(&p, now + 9999, &z, &atk, &g, &wait), SL_ELIMIT);
    assert_int_equal(wait, 1);
    assert_int_equal(user_login_admit(&p, now + 10000, &z, &atk, &g, &wait), 0);
    assert_int_equal(atk.blocked_until_ms, now + 10000 + 20000);
    /* A malformed email (no account) still counts for the client. */
    assert_int_equal(user_login_admit(&p, now + 10000, NULL, &atk, &g, &wait), SL_ELIMIT);
    /* The global budget (8 per window; 6 used so far): once spent, only clean clients pass. */
    assert_int_equal(g.failures, 6);
    user_login_counter c1 = {0}, c2 = {0}, c3 = {0};
    assert_int_equal(user_login_admit(&p, now + 10000, NULL, &c1, &g, &wait), 0);
    assert_int_equal(user_login_admit(&p, now + 10000, NULL, &c1, &g, &wait), 0);
    assert_int_equal(g.failures, 8);
    assert_int_equal(user_login_admit(&p, now + 10000, NULL, &c1, &g, &wait), SL_ELIMIT);
    assert_int_equal(wait, 50000);
    assert_int_equal(user_login_admit(&p, now + 10000, NULL, &c2, &g, &wait), 0);
    /* A new window restores it. */
    assert_int_equal(user_login_admit(&p, now + 60000, NULL, &c1, &g, &wait), 0);
    assert_int_equal(g.failures, 1);
    /* A quiet window resets an account's and a client's counter. */
    user_login_counter a2 = {3, now, now + 1000};
    assert_int_equal(user_login_admit(&p, now + 900001, &a2, &c3, &g, &wait), 0);
    assert_int_equal(a2.failures, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email_normalised),
        cmocka_unit_test(test_email_rejected),
        cmocka_unit_test(test_email_lengths),
        cmocka_unit_test(test_name_policy),
        cmocka_unit_test(test_password_policy),
        cmocka_unit_test(test_roles_ids_access),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_position_and_retry_after),
        cmocka_unit_test(test_event_data_round_trip),
        cmocka_unit_test(test_login_throttle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
