/*
 * A librdkafka plugin that gives a client OAUTHBEARER tokens from a file: what kcat needs to
 * log in with hdi's access tokens, since Debian's kcat (librdkafka 2.0.2) is built without
 * libcurl and so without the OIDC login. Loaded with `-X plugin.library.paths=<this .so>`; the
 * token is read from the file named by HDI_OAUTH_TOKEN_FILE each time librdkafka asks for one.
 * The few librdkafka declarations it needs are written out below (librdkafka 2.0.2's
 * rdkafka.h), so no development package is needed to build it: `cc -shared -fPIC`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_conf_s rd_kafka_conf_t;
typedef int rd_kafka_resp_err_t;

void rd_kafka_conf_set_oauthbearer_token_refresh_cb(
    rd_kafka_conf_t *conf,
    void (*cb)(rd_kafka_t *rk, const char *oauthbearer_config, void *opaque));
rd_kafka_resp_err_t rd_kafka_oauthbearer_set_token(rd_kafka_t *rk, const char *token_value,
                                                   int64_t md_lifetime_ms,
                                                   const char *md_principal_name,
                                                   const char **extensions, size_t extension_size,
                                                   char *errstr, size_t errstr_size);
rd_kafka_resp_err_t rd_kafka_oauthbearer_set_token_failure(rd_kafka_t *rk, const char *errstr);

/* librdkafka refreshes at 80% of the lifetime; the broker checks the token's own expiry. */
#define LIFETIME_MS (10 * 60 * 1000)

static void refresh(rd_kafka_t *rk, const char *config, void *opaque) {
    (void)config;
    (void)opaque;
    const char *path = getenv("HDI_OAUTH_TOKEN_FILE");
    if (path == NULL) {
        rd_kafka_oauthbearer_set_token_failure(rk, "HDI_OAUTH_TOKEN_FILE is not set");
        return;
    }
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        rd_kafka_oauthbearer_set_token_failure(rk, "cannot open HDI_OAUTH_TOKEN_FILE");
        return;
    }
    char token[16384];
    size_t length = fread(token, 1, sizeof token - 1, file);
    fclose(file);
    while (length > 0 && (token[length - 1] == '\n' || token[length - 1] == '\r')) {
        length--;
    }
    token[length] = '\0';
    if (length == 0) {
        rd_kafka_oauthbearer_set_token_failure(rk, "HDI_OAUTH_TOKEN_FILE is empty");
        return;
    }
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t expiry = (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000 + LIFETIME_MS;
    char error[512];
    /* The principal here is only what librdkafka logs; the broker takes it from the token. */
    if (rd_kafka_oauthbearer_set_token(rk, token, expiry, "hdi", NULL, 0, error, sizeof error)) {
        rd_kafka_oauthbearer_set_token_failure(rk, error);
    }
}

/* The plugin's entry point (rd_kafka_plugin_f_conf_init_t). */
rd_kafka_resp_err_t conf_init(rd_kafka_conf_t *conf, void **plug_opaquep, char *errstr,
                              size_t errstr_size) {
    (void)plug_opaquep;
    (void)errstr;
    (void)errstr_size;
    rd_kafka_conf_set_oauthbearer_token_refresh_cb(conf, refresh);
    return 0;
}
