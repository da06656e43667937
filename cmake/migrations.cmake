# shoal_embed_migrations(<target> <dir> <component>)
#
# Embeds the numbered SQL scripts of <dir> into <target> as a C array, so a
# binary carries its schema. Files are NNNN_name.sql (every
# backend), NNNN_name.sqlite.sql or NNNN_name.postgres.sql (one backend).
# The generated source defines `const sl_migration_set sl_migrations_<component>`
# (see include/shoal/db.h); declare it `extern` where you pass it to
# sl_db_migrate(). It is regenerated whenever a script changes.
set(SHOAL_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/embed_migrations.cmake)

function(shoal_embed_migrations target dir component)
  if(NOT component MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "shoal_embed_migrations: component '${component}' is not a C identifier")
  endif()
  file(GLOB files CONFIGURE_DEPENDS ${dir}/*.sql)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/migrations_${component}.c)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DDIR=${dir} -DOUT=${out} -DCOMPONENT=${component}
            -P ${SHOAL_EMBED_SCRIPT}
    DEPENDS ${files} ${SHOAL_EMBED_SCRIPT}
    COMMENT "Embedding migrations of ${component}"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
endfunction()
