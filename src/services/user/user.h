/*
 * shoal-user: the user context (registration, login with Ed25519-signed JWTs
 * and a JWKS endpoint, profiles, roles), CQRS with a write model and an
 * event-fed read model. See docs/services/user.md.
 */
#ifndef SHOAL_SVC_USER_H
#define SHOAL_SVC_USER_H

#include <shoal/db.h>
#include <shoal/service.h>

/* The service definition that main.c hosts. */
extern const sl_service_def user_service;

/* The embedded migrations (src/services/user/migrations). */
extern const sl_migration_set sl_migrations_user;

#endif /* SHOAL_SVC_USER_H */
