/*
 * Identity key distribution for `shoal up` (keys.c). The master secret
 * (<data_dir>/identity.master, 0600) stays with `shoal up`; each process gets
 * <data_dir>/keys/<name>.keys (0600, directory 0700) with only the keys of its
 * own caller→callee edges (include/shoal/identity.h). The edges come from the
 * configuration:
 *   - the gateway → every cluster of its configuration file that names a
 *     service of the topology, asserting end-user roles (customer, admin);
 *   - services[i].calls: [name, ...] → those services, asserting `service`.
 */
#ifndef SHOAL_CLI_KEYS_H
#define SHOAL_CLI_KEYS_H

#include <shoal/config.h>

/* Writes every process's key file. Returns 0, or an SL_E code with the reason in err
 * (SL_CONFIG_ERR_MAX bytes). */
int cli_keys_distribute(const sl_config *topology, const char *data_dir, char *err);

#endif
