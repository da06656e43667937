# Test registration. Every tests/unit/<name>_test.c becomes the ctest test
# unit.<name> (label unit); every tests/integration/<name>_test.c becomes
# integration.<name> (label integration). Each runs in its own process with
# a timeout. Suites that need servers get them from fixtures
# declared by the suites themselves (see tests/README.md).

set(SHOAL_TEST_ENV "SHOAL_BIN_DIR=${CMAKE_BINARY_DIR}/bin" "SHOAL_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
# The chaos round (e2e.chaos) and the flapping participant (e2e.outage) run 20 s each in the
# separate shape, in `make test` and in the sanitizer build (CI's time budget, which the other
# hosting shapes below share: a 20 s round still makes about four faults, a 20 s flap about six
# kills of payment; both default to 60 s when run alone, and bench/chaos.sh runs minutes).
list(APPEND SHOAL_TEST_ENV "SHOAL_CHAOS_SECONDS=20" "SHOAL_E2E_FLAP_S=20")

function(shoal_add_tests kind label timeout)
  file(GLOB tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/${kind}/*_test.c)
  foreach(src ${tests})
    get_filename_component(base ${src} NAME_WE)
    string(REGEX REPLACE "_test$" "" name ${base})
    set(target ${kind}_${name})
    add_executable(${target} ${src})
    target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR}/src/lib)
    target_link_libraries(${target} PRIVATE shoal PkgConfig::CMOCKA)
    if(TARGET shoal_testsupport)
      target_link_libraries(${target} PRIVATE shoal_testsupport)
    endif()
    set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    add_test(NAME ${kind}.${name} COMMAND ${target})
    set_tests_properties(${kind}.${name} PROPERTIES LABELS "${label}" TIMEOUT ${timeout}
      ENVIRONMENT "${SHOAL_TEST_ENV}")
  endforeach()
endfunction()

shoal_add_tests(unit unit 120)
shoal_add_tests(integration integration 300)

# A service includes another service's files only from its contract/ (src/services/CMakeLists.txt).
add_test(NAME unit.layout COMMAND ${CMAKE_SOURCE_DIR}/scripts/check-layout.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(unit.layout PROPERTIES LABELS unit TIMEOUT 120)

# Fuzz targets (tests/fuzz/<name>_fuzz.c). Under SHOAL_FUZZ they link with
# libFuzzer; otherwise each is built with a small driver that replays its
# corpus, so the parsers' corpora run in every `make test`.
file(GLOB fuzzers CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/*_fuzz.c)
add_custom_target(fuzz_all) # `make fuzz` builds only these
foreach(src ${fuzzers})
  get_filename_component(base ${src} NAME_WE)
  string(REGEX REPLACE "_fuzz$" "" name ${base})
  if(SHOAL_FUZZ)
    add_executable(fuzz_${name} ${src})
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
  else()
    add_executable(fuzz_${name} ${src} ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.c)
    add_test(NAME fuzz.${name}.corpus COMMAND fuzz_${name} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${name})
    set_tests_properties(fuzz.${name}.corpus PROPERTIES LABELS "unit;fuzz" TIMEOUT 120)
  endif()
  target_include_directories(fuzz_${name} PRIVATE ${CMAKE_SOURCE_DIR}/src/lib ${HTTP_PARSER_INCLUDE})
  target_link_libraries(fuzz_${name} PRIVATE shoal)
  add_dependencies(fuzz_all fuzz_${name})
  set_target_properties(fuzz_${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
endforeach()

# sl_db conformance suites: every tests/db/<name>_test.c is ONE source run
# twice, as db.<name>.sqlite (label unit) and db.<name>.pg (label pg), the
# backend chosen by argv[1]. The pg runs require the `pg` fixture: a
# throwaway PostgreSQL cluster started by scripts/pg-fixture.sh, whose URL is
# written to ${SHOAL_PG_DIR}/url (SHOAL_PG_URL_FILE). If it cannot start,
# the setup test fails and so do the pg tests: they never skip silently.
file(GLOB db_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/db/*_test.c)
if(db_tests)
  set(SHOAL_PG_DIR ${CMAKE_BINARY_DIR}/pg-fixture)
  add_test(NAME db.pg.fixture.start
    COMMAND ${CMAKE_SOURCE_DIR}/scripts/pg-fixture.sh start ${SHOAL_PG_DIR})
  set_tests_properties(db.pg.fixture.start PROPERTIES FIXTURES_SETUP pg LABELS pg TIMEOUT 120)
  add_test(NAME db.pg.fixture.stop
    COMMAND ${CMAKE_SOURCE_DIR}/scripts/pg-fixture.sh stop ${SHOAL_PG_DIR})
  set_tests_properties(db.pg.fixture.stop PROPERTIES FIXTURES_CLEANUP pg LABELS pg TIMEOUT 60)
  foreach(src ${db_tests})
    get_filename_component(base ${src} NAME_WE)
    string(REGEX REPLACE "_test$" "" name ${base})
    add_executable(db_${name} ${src})
    target_include_directories(db_${name} PRIVATE ${CMAKE_SOURCE_DIR}/src/lib ${CMAKE_SOURCE_DIR}/tests/db)
    target_link_libraries(db_${name} PRIVATE shoal PkgConfig::CMOCKA)
    set_target_properties(db_${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    add_test(NAME db.${name}.sqlite COMMAND db_${name} sqlite)
    set_tests_properties(db.${name}.sqlite PROPERTIES LABELS "unit;db" TIMEOUT 120
      ENVIRONMENT "${SHOAL_TEST_ENV}")
    add_test(NAME db.${name}.pg COMMAND db_${name} pg)
    set_tests_properties(db.${name}.pg PROPERTIES LABELS "pg;db" TIMEOUT 120
      FIXTURES_REQUIRED pg
      ENVIRONMENT "${SHOAL_TEST_ENV};SHOAL_PG_URL_FILE=${SHOAL_PG_DIR}/url")
  endforeach()
endif()

# Service suites: tests/services/<svc>/<name>_test.c link svc_<svc>.
#   *_api_test.c   run twice over real sockets against build/bin/shoal-<svc>:
#                  services.<svc>.<name>.sqlite (label integration) and
#                  services.<svc>.<name>.pg (label pg, needs the pg fixture);
#                  argv[1] names the backend.
#   other files    unit tests of pure code (label unit).
file(GLOB svc_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/services/*/*_test.c)
foreach(src ${svc_tests})
  get_filename_component(base ${src} NAME_WE)
  get_filename_component(svcdir ${src} DIRECTORY)
  get_filename_component(svc ${svcdir} NAME)
  string(REGEX REPLACE "_test$" "" name ${base})
  set(target svc_${svc}_${name}_test)
  add_executable(${target} ${src})
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR}/src/lib ${CMAKE_SOURCE_DIR}/tests/db)
  target_link_libraries(${target} PRIVATE svc_${svc} PkgConfig::CMOCKA)
  if(TARGET shoal_testsupport)
    target_link_libraries(${target} PRIVATE shoal_testsupport)
  endif()
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(name MATCHES "_api$")
    add_test(NAME services.${svc}.${name}.sqlite COMMAND ${target} sqlite)
    set_tests_properties(services.${svc}.${name}.sqlite PROPERTIES LABELS "integration;${svc}"
      TIMEOUT 300 ENVIRONMENT "${SHOAL_TEST_ENV}")
    add_test(NAME services.${svc}.${name}.pg COMMAND ${target} pg)
    set_tests_properties(services.${svc}.${name}.pg PROPERTIES LABELS "pg;${svc}" TIMEOUT 300
      FIXTURES_REQUIRED pg ENVIRONMENT "${SHOAL_TEST_ENV};SHOAL_PG_URL_FILE=${CMAKE_BINARY_DIR}/pg-fixture/url")
  else()
    add_test(NAME services.${svc}.${name} COMMAND ${target})
    set_tests_properties(services.${svc}.${name} PROPERTIES LABELS "unit;${svc}" TIMEOUT 120
      ENVIRONMENT "${SHOAL_TEST_ENV}")
  endif()
endforeach()

# Gateway suites: tests/proxy/<name>_test.c link proxy_core; names ending in
# _e2e run real processes (label integration), the others are unit tests.
file(GLOB proxy_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/proxy/*_test.c)
foreach(src ${proxy_tests})
  get_filename_component(base ${src} NAME_WE)
  string(REGEX REPLACE "_test$" "" name ${base})
  add_executable(proxy_${name}_test ${src})
  target_link_libraries(proxy_${name}_test PRIVATE proxy_core PkgConfig::CMOCKA)
  if(TARGET shoal_testsupport)
    target_link_libraries(proxy_${name}_test PRIVATE shoal_testsupport)
  endif()
  set_target_properties(proxy_${name}_test PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(name MATCHES "_e2e$")
    set(lbl integration)
  else()
    set(lbl unit)
  endif()
  add_test(NAME proxy.${name} COMMAND proxy_${name}_test)
  set_tests_properties(proxy.${name} PROPERTIES LABELS "${lbl};proxy" TIMEOUT 300
    ENVIRONMENT "${SHOAL_TEST_ENV}")
endforeach()

# Layering: the .c files of src/proxy and of src/lib/http_client call each other in one direction.
add_test(NAME check.cycles COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/check-cycles.sh)
set_tests_properties(check.cycles PROPERTIES LABELS "unit;proxy" TIMEOUT 60)
# Both structure checks fail on small broken trees (and pass on their fixed versions).
add_test(NAME check.scripts COMMAND bash ${CMAKE_SOURCE_DIR}/tests/scripts/checks_test.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(check.scripts PROPERTIES LABELS "unit" TIMEOUT 60)

# Bus conformance suites: every tests/bus/<name>_test.c is ONE source run on
# both backends, as bus.<name>.inproc (label unit) and bus.<name>.nats (label
# nats), chosen by argv[1]. Every tests/nats/<name>_test.c (durability: killed
# processes and servers, a 3-node cluster) runs as nats.<name>. The nats runs
# require the `nats` fixture: a nats-server with JetStream on a free port and
# a temporary store (scripts/nats-fixture.sh; the nats.* suites start their
# own servers the same way, as they kill them), whose URL is in
# ${SHOAL_NATS_DIR}/url (SHOAL_NATS_DIR). If it cannot start, the setup test
# fails and so do the nats tests: they never skip silently. The helper
# programs of tests/nats/helpers/*.c are built into bin/.
file(GLOB bus_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/bus/*_test.c)
file(GLOB nats_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/nats/*_test.c)
file(GLOB nats_helpers CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/nats/helpers/*.c)
if(bus_tests OR nats_tests)
  set(SHOAL_NATS_DIR ${CMAKE_BINARY_DIR}/nats-fixture)
  add_test(NAME bus.nats.fixture.start
    COMMAND ${CMAKE_SOURCE_DIR}/scripts/nats-fixture.sh start ${SHOAL_NATS_DIR})
  set_tests_properties(bus.nats.fixture.start PROPERTIES FIXTURES_SETUP nats LABELS nats TIMEOUT 60)
  add_test(NAME bus.nats.fixture.stop
    COMMAND ${CMAKE_SOURCE_DIR}/scripts/nats-fixture.sh stop ${SHOAL_NATS_DIR})
  set_tests_properties(bus.nats.fixture.stop PROPERTIES FIXTURES_CLEANUP nats LABELS nats TIMEOUT 60)
  set(SHOAL_NATS_ENV "${SHOAL_TEST_ENV};SHOAL_NATS_DIR=${SHOAL_NATS_DIR}")
  foreach(src ${nats_helpers})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    target_link_libraries(${name} PRIVATE shoal)
  endforeach()
  foreach(src ${bus_tests})
    get_filename_component(base ${src} NAME_WE)
    string(REGEX REPLACE "_test$" "" name ${base})
    add_executable(bus_${name} ${src})
    target_include_directories(bus_${name} PRIVATE ${CMAKE_SOURCE_DIR}/src/lib ${CMAKE_SOURCE_DIR}/tests/bus)
    target_link_libraries(bus_${name} PRIVATE shoal PkgConfig::CMOCKA)
    set_target_properties(bus_${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    add_test(NAME bus.${name}.inproc COMMAND bus_${name} inproc)
    set_tests_properties(bus.${name}.inproc PROPERTIES LABELS "unit;bus" TIMEOUT 120
      ENVIRONMENT "${SHOAL_TEST_ENV}")
    add_test(NAME bus.${name}.nats COMMAND bus_${name} nats)
    set_tests_properties(bus.${name}.nats PROPERTIES LABELS "nats;bus" TIMEOUT 180
      FIXTURES_REQUIRED nats ENVIRONMENT "${SHOAL_NATS_ENV}")
  endforeach()
  foreach(src ${nats_tests})
    get_filename_component(base ${src} NAME_WE)
    string(REGEX REPLACE "_test$" "" name ${base})
    add_executable(nats_${name} ${src})
    target_include_directories(nats_${name} PRIVATE ${CMAKE_SOURCE_DIR}/src/lib
      ${CMAKE_SOURCE_DIR}/tests/services ${CMAKE_SOURCE_DIR}/tests/db)
    target_link_libraries(nats_${name} PRIVATE shoal shoal_testsupport PkgConfig::CMOCKA)
    set_target_properties(nats_${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    add_test(NAME nats.${name} COMMAND nats_${name})
    # These start their own servers (killing them is the point); the lock keeps two such
    # heavy suites from running at once on a small machine.
    set_tests_properties(nats.${name} PROPERTIES LABELS "nats" TIMEOUT 600
      RESOURCE_LOCK nats_durability ENVIRONMENT "${SHOAL_NATS_ENV}")
  endforeach()
endif()

# End-to-end suites: tests/e2e/<name>_test.c run `shoal up` (every service, nats-server and
# the gateway as real processes) and drive the public API through the gateway.
file(GLOB e2e_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/e2e/*_test.c)
foreach(src ${e2e_tests})
  get_filename_component(base ${src} NAME_WE)
  string(REGEX REPLACE "_test$" "" name ${base})
  add_executable(e2e_${name} ${src})
  target_link_libraries(e2e_${name} PRIVATE shoal shoal_testsupport PkgConfig::CMOCKA)
  set_target_properties(e2e_${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME e2e.${name} COMMAND e2e_${name})
  # One whole shop at a time (whole_shop, shared with the browser tests): two at once would
  # starve each other on a small machine. They start their own nats-server, so they may run
  # beside the NATS durability suites.
  set_tests_properties(e2e.${name} PROPERTIES LABELS "e2e" TIMEOUT 900
    RESOURCE_LOCK whole_shop ENVIRONMENT "${SHOAL_TEST_ENV}")
endforeach()

# The gateway's static path resolver (src/proxy/static.c) is fuzzed from the proxy's own code.
if(TARGET fuzz_static_path)
  target_link_libraries(fuzz_static_path PRIVATE proxy_core)
endif()
# The sidecar's authorization policy (src/proxy/policy.c): request paths and rule lists.
if(TARGET fuzz_mesh_policy)
  target_link_libraries(fuzz_mesh_policy PRIVATE proxy_core)
endif()

# Browser tests: tests/browser/<name>.test.mjs (label browser) start `shoal up` on a fresh data
# directory and drive Debian's chromium through playwright-core (npm, scripts/deps.sh); their
# screenshots land in build/browser/<name>/. The lock keeps them apart from the other suites
# that run the whole shop.
find_program(SHOAL_NODE node)
if(NOT SHOAL_NODE)
  set(SHOAL_NODE node)
endif()
file(GLOB browser_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/browser/*.test.mjs)
# The pages are tested in `make test`; the sanitizer build leaves them out (CI's time budget):
# the C they reach (the gateway's routes, static files and admin aggregates) runs under the
# sanitizers in the proxy and end-to-end suites and the static-path fuzz target.
if(SHOAL_SANITIZE)
  set(browser_tests "")
endif()
foreach(src ${browser_tests})
  get_filename_component(base ${src} NAME)
  string(REGEX REPLACE "\\.test\\.mjs$" "" name ${base})
  add_test(NAME browser.${name} COMMAND ${SHOAL_NODE} ${src})
  set_tests_properties(browser.${name} PROPERTIES LABELS browser TIMEOUT 300
    RESOURCE_LOCK whole_shop
    ENVIRONMENT "${SHOAL_TEST_ENV};SHOAL_BROWSER_OUT=${CMAKE_BINARY_DIR}/browser/${name}")
endforeach()
if(TARGET fuzz_prom_text)
  target_link_libraries(fuzz_prom_text PRIVATE proxy_core)
endif()
# Version subsets: the admin API's split body (proxy) and `shoal rollout`'s metrics reader (cli).
if(TARGET fuzz_subset_split)
  target_link_libraries(fuzz_subset_split PRIVATE proxy_core)
endif()
if(TARGET fuzz_rollout_metrics)
  target_link_libraries(fuzz_rollout_metrics PRIVATE shoal_cli_core)
  target_include_directories(fuzz_rollout_metrics PRIVATE ${CMAKE_SOURCE_DIR}/src/cli)
endif()

# The operations console's scenario waits out a stuck saga and a gateway timeout on a shared
# machine: it gets more time than the other browser tests.
if(TEST browser.ops)
  set_tests_properties(browser.ops PROPERTIES TIMEOUT 900)
endif()
# The shoal command's pure parts: tests/cli/<name>_test.c link shoal_cli_core (label unit).
file(GLOB cli_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cli/*_test.c)
foreach(src ${cli_tests})
  get_filename_component(base ${src} NAME_WE)
  string(REGEX REPLACE "_test$" "" name ${base})
  add_executable(cli_${name}_test ${src})
  target_link_libraries(cli_${name}_test PRIVATE shoal_cli_core PkgConfig::CMOCKA)
  set_target_properties(cli_${name}_test PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME cli.${name} COMMAND cli_${name}_test)
  set_tests_properties(cli.${name} PROPERTIES LABELS "unit" TIMEOUT 120 ENVIRONMENT "${SHOAL_TEST_ENV}")
endforeach()
# The mesh plan's test loads the sidecar configurations it writes with the proxy's own loader.
if(TARGET cli_mesh_test)
  target_link_libraries(cli_mesh_test PRIVATE proxy_core)
endif()
# The audit's fuzz target reaches the gateway's join and the cli's reader.
if(TARGET fuzz_audit_join)
  target_link_libraries(fuzz_audit_join PRIVATE proxy_core shoal_cli_core)
endif()

# deploy/prometheus checked by promtool (config, rules, rule unit tests): a few CPU seconds, but
# promtool's start-up and evaluation stretch on a loaded machine.
set_tests_properties(unit.prometheus_deploy PROPERTIES TIMEOUT 600)

# The trace receiver (src/traces): its OTLP decoder is fuzzed, and tests/traces/<name>_test.c
# link traces_core (names ending in _e2e run the real shoal-traces process: label integration).
if(TARGET fuzz_otlp_decode)
  target_link_libraries(fuzz_otlp_decode PRIVATE traces_core)
endif()
file(GLOB traces_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/traces/*_test.c)
foreach(src ${traces_tests})
  get_filename_component(base ${src} NAME_WE)
  string(REGEX REPLACE "_test$" "" name ${base})
  add_executable(traces_${name}_test ${src})
  target_link_libraries(traces_${name}_test PRIVATE traces_core shoal_testsupport PkgConfig::CMOCKA)
  set_target_properties(traces_${name}_test PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(name MATCHES "_e2e$")
    set(lbl integration)
  else()
    set(lbl unit)
  endif()
  add_test(NAME traces.${name} COMMAND traces_${name}_test)
  set_tests_properties(traces.${name} PROPERTIES LABELS "${lbl}" TIMEOUT 300
    ENVIRONMENT "${SHOAL_TEST_ENV}")
endforeach()
# `shoal graph`'s readers (src/cli/graph_model.c) are fuzzed from the cli's own code.
if(TARGET fuzz_graph_traces)
  target_link_libraries(fuzz_graph_traces PRIVATE shoal_cli_core)
  target_include_directories(fuzz_graph_traces PRIVATE ${CMAKE_SOURCE_DIR}/src/cli)
endif()

# The other hosting shapes (tests/support/shape.h, docs/architecture.md "Hosting", tests/README.md):
# monolith (all seven services in one shoal-shop process) and mixed (order and payment their own
# processes, the other five in one). A test <suite>.<shape> runs the suite with
# SHOAL_E2E_SHAPE=<shape>, and shorter rounds where the point of a scenario survives (a chaos
# round still kills, pauses and slows the shop's processes; payment still flaps several times).
# Left out, and why:
# - the outage suite in the monolith: there is no participant to take down alone (freezing or
#   killing one takes every service down, and nothing takes orders); e2e.shop.monolith kills the
#   monolith mid-checkout instead;
# - the smoke browser test in both: it tests the gateway's static files, the same in every shape;
# - the ops and admin_api browser tests in the monolith: they stop one service alone, and plant an
#   event straight into nats-server, which a monolith on an in-process bus does not read;
# - in the sanitizer build, every extra shape but e2e.shop.monolith: what the shapes add in C is
#   the in-process call path and hosting, which the monolith's journey reaches (and
#   integration.local_call under the sanitizers); the rest is the same C as in the separate shape.
if(SHOAL_SANITIZE)
  set(shoal_shape_e2e "shop:monolith")
  set(shoal_shape_browser "")
else()
  set(shoal_shape_e2e shop:monolith shop:mixed load:monolith load:mixed trace:monolith
    trace:mixed outage:mixed chaos:monolith chaos:mixed)
  set(shoal_shape_browser shopper:monolith shopper:mixed admin_api:mixed ops:mixed)
endif()

# deploy/k8s (docs/operations.md, "Kubernetes"): deploy.k8s_drift fails when the committed
# manifests differ from what `shoal deploy k8s` makes of config/scale.yaml today;
# deploy.k8s_manifests (node, tests/deploy) validates them against the Kubernetes schemas
# (kubernetes-models, npm) and checks what an operator would: probes, limits, non-root,
# read-only root filesystem, network policies equal to the dependency graph, the image's binaries.
add_test(NAME deploy.k8s_drift
  COMMAND shoal_cli deploy k8s --config config/scale.yaml --out deploy/k8s --check
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(deploy.k8s_drift PROPERTIES LABELS unit TIMEOUT 60)
add_test(NAME deploy.k8s_manifests COMMAND ${SHOAL_NODE} ${CMAKE_SOURCE_DIR}/tests/deploy/manifests.test.mjs)
set_tests_properties(deploy.k8s_manifests PROPERTIES LABELS unit TIMEOUT 120
  ENVIRONMENT "${SHOAL_TEST_ENV}")
# NATS in mesh mode (tests/nats/mesh_test.c): the generator and certificates of the shoal
# command, and nats.c itself for raw connection attempts.
if(TARGET nats_mesh)
  target_link_libraries(nats_mesh PRIVATE shoal_cli_core PkgConfig::NATS)
  target_include_directories(nats_mesh PRIVATE ${CMAKE_SOURCE_DIR}/src/cli)
endif()
if(TARGET fuzz_nats_mesh)
  target_link_libraries(fuzz_nats_mesh PRIVATE shoal_cli_core)
  target_include_directories(fuzz_nats_mesh PRIVATE ${CMAKE_SOURCE_DIR}/src/cli)
endif()
set(shoal_shape_env SHOAL_CHAOS_SECONDS=10 SHOAL_E2E_FLAP_S=15)
foreach(item ${shoal_shape_e2e})
  string(REPLACE ":" ";" parts ${item})
  list(GET parts 0 suite)
  list(GET parts 1 shape)
  if(TARGET e2e_${suite})
    add_test(NAME e2e.${suite}.${shape} COMMAND e2e_${suite})
    set_tests_properties(e2e.${suite}.${shape} PROPERTIES LABELS "e2e" TIMEOUT 900
      RESOURCE_LOCK whole_shop
      ENVIRONMENT "${SHOAL_TEST_ENV};${shoal_shape_env};SHOAL_E2E_SHAPE=${shape}")
  endif()
endforeach()
# The journey in mesh mode (docs/mesh.md; SHOAL_E2E_MESH=1, tests/support/shape.h): every call
# between processes through two sidecars with mTLS, NATS with TLS and one user per service. In the
# normal build only: the sidecars' C (TLS, policy, the local hop) runs under the sanitizers in
# proxy.sidecar_e2e and proxy.sidecar_peer_e2e, and one more whole-shop suite there would add to
# the whole-shop chain again (it takes about 35 s in the normal build).
if(NOT SHOAL_SANITIZE AND TARGET e2e_shop)
  add_test(NAME e2e.shop.mesh COMMAND e2e_shop)
  set_tests_properties(e2e.shop.mesh PROPERTIES LABELS "e2e" TIMEOUT 900
    RESOURCE_LOCK whole_shop
    ENVIRONMENT "${SHOAL_TEST_ENV};SHOAL_E2E_MESH=1")
endif()
# `shoal load`'s counts (about 15 s) and the checkout's one trace with the sidecars' spans in it
# (about 5 s) against the shop in mesh mode, normal build only as above.
foreach(suite load trace)
  if(NOT SHOAL_SANITIZE AND TARGET e2e_${suite})
    add_test(NAME e2e.${suite}.mesh COMMAND e2e_${suite})
    set_tests_properties(e2e.${suite}.mesh PROPERTIES LABELS "e2e" TIMEOUT 900
      RESOURCE_LOCK whole_shop
      ENVIRONMENT "${SHOAL_TEST_ENV};SHOAL_E2E_MESH=1")
  endif()
endforeach()
# The storefront's journey in mesh mode (the harness's SHOAL_E2E_MESH=1): every page's calls
# cross the gateway's sidecar and the services' sidecars with mTLS. Normal build only, as above.
if(NOT SHOAL_SANITIZE AND TEST browser.shopper)
  add_test(NAME browser.shopper.mesh
    COMMAND ${SHOAL_NODE} ${CMAKE_SOURCE_DIR}/tests/browser/shopper.test.mjs)
  get_test_property(browser.shopper TIMEOUT tmo)
  set_tests_properties(browser.shopper.mesh PROPERTIES LABELS browser TIMEOUT ${tmo}
    RESOURCE_LOCK whole_shop
    ENVIRONMENT "${SHOAL_TEST_ENV};SHOAL_E2E_MESH=1;SHOAL_BROWSER_OUT=${CMAKE_BINARY_DIR}/browser/shopper.mesh")
endif()
foreach(item ${shoal_shape_browser})
  string(REPLACE ":" ";" parts ${item})
  list(GET parts 0 name)
  list(GET parts 1 shape)
  if(TEST browser.${name})
    add_test(NAME browser.${name}.${shape}
      COMMAND ${SHOAL_NODE} ${CMAKE_SOURCE_DIR}/tests/browser/${name}.test.mjs)
    get_test_property(browser.${name} TIMEOUT tmo)
    set_tests_properties(browser.${name}.${shape} PROPERTIES LABELS browser TIMEOUT ${tmo}
      RESOURCE_LOCK whole_shop
      ENVIRONMENT "${SHOAL_TEST_ENV};SHOAL_E2E_SHAPE=${shape};SHOAL_BROWSER_OUT=${CMAKE_BINARY_DIR}/browser/${name}.${shape}")
  endif()
endforeach()

# Scheduling: with no timings from an earlier run (a fresh build, as in CI) ctest starts tests in
# the order they were declared, which put the whole-shop suites last. They run one at a time
# (whole_shop) and are the longest chain, so they get a high COST: ctest starts them first and
# fills the other slots with the rest around them. The NATS durability suites, the next longest,
# come next.
get_property(shoal_all_tests DIRECTORY PROPERTY TESTS)
foreach(t ${shoal_all_tests})
  get_test_property(${t} RESOURCE_LOCK lock)
  if(lock MATCHES "whole_shop")
    set_tests_properties(${t} PROPERTIES COST 1000)
  elseif(lock MATCHES "nats_durability")
    set_tests_properties(${t} PROPERTIES COST 500)
  endif()
endforeach()
