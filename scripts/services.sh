#!/usr/bin/env bash
# Install and run the real services the egx-pipeline test suite talks to:
#   * Apache Kafka broker (KRaft, combined broker+controller, single node),
#     assembled from its jars on Maven Central;
#   * an S3-compatible object store (versitygw, built with `go install`);
#   * kafka-secure: a second, separate single-node KRaft broker (same jars) whose
#     client listener is SASL_SSL (SCRAM-SHA-512 and PLAIN) with a certificate from a
#     private CA, and the StandardAuthorizer with ACLs (no ACL = denied);
#   * s3-tls: a second versitygw serving HTTPS with a certificate from the same CA.
#
# Usage: scripts/services.sh start|stop|status|restart|clean [kafka|s3|kafka-secure|s3-tls]
#        (no second argument = all four services)
#
# The secured services get fresh passwords, keys and certificates at each start
# (a fresh CA too unless the other secured service is running and uses the current
# one). Nothing secret is printed; it is all written, mode 600, under
# $RUN_DIR/secure ($EGX_SERVICES_DIR or .cache, then run/secure), and
#   $RUN_DIR/secure/credentials.env   (`source` it; scripts/test.sh does)
# exports to the tests:
#   EGX_TEST_CA                  PEM of the private CA that signed both server certs
#   EGX_TEST_OTHER_CA            PEM of a second, unrelated CA (for "untrusted CA" tests)
#   EGX_TEST_SECURE_KAFKA        bootstrap of the SASL_SSL listener (127.0.0.1:9094)
#   EGX_TEST_SCRAM_USER / EGX_TEST_SCRAM_PASSWORD        SCRAM-SHA-512 user egx-scram
#   EGX_TEST_PLAIN_USER / EGX_TEST_PLAIN_PASSWORD        PLAIN user egx-plain
#   EGX_TEST_READONLY_USER / EGX_TEST_READONLY_PASSWORD  SCRAM-SHA-512 user egx-readonly
#   EGX_TEST_NOGROUP_USER / EGX_TEST_NOGROUP_PASSWORD    SCRAM-SHA-512 user egx-nogroup
#   EGX_TEST_S3_TLS              endpoint of the HTTPS S3 server (https://127.0.0.1:9443)
#   EGX_TEST_S3_TLS_ACCESS_KEY / EGX_TEST_S3_TLS_SECRET_KEY  its root credentials
# ACLs of kafka-secure (all PREFIXED patterns, allow; everything else is denied):
#   egx-scram, egx-plain: topics secure-*: Read, Write, Describe, Create, DescribeConfigs;
#                         groups secure-*: Read, Describe
#   egx-readonly:         topics secure-*: Read, Describe; groups secure-*: Read, Describe
#   egx-nogroup:          topics secure-*: Read, Write, Describe, Create, DescribeConfigs;
#                         no group rights
# No cluster ACL is granted: since Kafka 3.0 (KIP-679) Write on a topic is enough for an
# idempotent producer. Topics are not auto-created on that broker.
#
# Everything (downloads, data, logs, pid files) lives under $EGX_CACHE_DIR,
# by default <repo>/.cache, which is git-ignored. $EGX_SERVICES_DIR moves the data,
# logs and pid files elsewhere (downloads stay in the cache), so a second, private set
# of services can run beside the first on other ports.
set -euo pipefail

# ---------------------------------------------------------------- versions --
KAFKA_VERSION=4.4.0
KAFKA_SCALA_VERSION=2.13
LOG4J_VERSION=2.26.1
# Kafka itself still declares slf4j-api 1.7.x; log4j-slf4j2-impl needs the 2.x API.
SLF4J_VERSION=2.0.17
MAVEN_DEPENDENCY_PLUGIN_VERSION=3.8.1
VERSITYGW_MODULE=github.com/versity/versitygw/cmd/versitygw
VERSITYGW_VERSION=v1.8.0

# ---------------------------------------------------------------- settings --
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m}
KAFKA_READY_TIMEOUT=${KAFKA_READY_TIMEOUT:-90}
S3_PORT=${S3_PORT:-9000}
S3_ACCESS_KEY=${S3_ACCESS_KEY:-minioadmin}
S3_SECRET_KEY=${S3_SECRET_KEY:-minioadmin}
S3_REGION=${S3_REGION:-us-east-1}
S3_READY_TIMEOUT=${S3_READY_TIMEOUT:-30}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}
# kafka-secure: SASL_SSL listener for clients, SASL_PLAINTEXT listener for the broker
# itself and the admin tools (super user only), SASL_PLAINTEXT controller listener.
KAFKA_SECURE_PORT=${KAFKA_SECURE_PORT:-9094}
KAFKA_SECURE_INTERNAL_PORT=${KAFKA_SECURE_INTERNAL_PORT:-9095}
KAFKA_SECURE_CONTROLLER_PORT=${KAFKA_SECURE_CONTROLLER_PORT:-9096}
KAFKA_SECURE_HEAP_OPTS=${KAFKA_SECURE_HEAP_OPTS:--Xmx384m}
# s3-tls: HTTPS versitygw.
S3_TLS_PORT=${S3_TLS_PORT:-9443}

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
CACHE_DIR=${EGX_CACHE_DIR:-$REPO_ROOT/.cache}
mkdir -p -- "$CACHE_DIR"
CACHE_DIR=$(cd -- "$CACHE_DIR" && pwd -P)

STATE_DIR=${EGX_SERVICES_DIR:-$CACHE_DIR}
mkdir -p -- "$STATE_DIR"
STATE_DIR=$(cd -- "$STATE_DIR" && pwd -P)
RUN_DIR=$STATE_DIR/run
DATA_DIR=$STATE_DIR/data
KAFKA_HOME=$CACHE_DIR/kafka
KAFKA_LIBS=$KAFKA_HOME/libs
KAFKA_MARKER=$KAFKA_LIBS/.installed-kafka-$KAFKA_SCALA_VERSION-$KAFKA_VERSION-log4j-$LOG4J_VERSION-slf4j-$SLF4J_VERSION
KAFKA_CONF_DIR=$RUN_DIR/kafka-config
KAFKA_DATA=$DATA_DIR/kafka
KAFKA_PID=$RUN_DIR/kafka.pid
KAFKA_LOG=$RUN_DIR/kafka.log          # log4j2 server log
KAFKA_STDOUT=$RUN_DIR/kafka.stdout.log # JVM stdout/stderr
S3_DATA_ROOT=$DATA_DIR/s3
S3_DATA=$S3_DATA_ROOT/versitygw
S3_PID=$RUN_DIR/s3.pid
S3_LOG=$RUN_DIR/s3.log
VERSITYGW_BIN=$CACHE_DIR/bin/versitygw
VERSITYGW_MARKER=$CACHE_DIR/bin/.installed-versitygw-$VERSITYGW_VERSION
# Shared by the secured services: the private CAs and the credentials file.
SECURE_DIR=$RUN_DIR/secure
SECURE_ENV=$SECURE_DIR/credentials.env
CA_PEM=$SECURE_DIR/ca.pem
CA_KEY=$SECURE_DIR/ca.key
OTHER_CA_PEM=$SECURE_DIR/other-ca.pem
KAFKA_SECURE_RUN=$RUN_DIR/kafka-secure
KAFKA_SECURE_CONF=$KAFKA_SECURE_RUN/config
KAFKA_SECURE_DATA=$DATA_DIR/kafka-secure
KAFKA_SECURE_PID=$KAFKA_SECURE_RUN/kafka.pid
KAFKA_SECURE_LOG=$KAFKA_SECURE_RUN/kafka.log          # log4j2 server log
KAFKA_SECURE_STDOUT=$KAFKA_SECURE_RUN/kafka.stdout.log # JVM stdout/stderr
KAFKA_SECURE_ENV=$KAFKA_SECURE_RUN/credentials.env     # written once ready
S3_TLS_RUN=$RUN_DIR/s3-tls
S3_TLS_DATA=$DATA_DIR/s3-tls
S3_TLS_PID=$S3_TLS_RUN/s3.pid
S3_TLS_LOG=$S3_TLS_RUN/s3.log
S3_TLS_ENV=$S3_TLS_RUN/credentials.env # written once ready

# ----------------------------------------------------------------- helpers --
log() { printf '[services] %s\n' "$*"; }
warn() { printf '[services] warning: %s\n' "$*" >&2; }
die() {
  printf '[services] error: %s\n' "$*" >&2
  exit 1
}

require_tool() { # tool, why
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH; it is needed $2"
}

require_java() {
  require_tool java "to run the Kafka $KAFKA_VERSION broker (Java 17+)"
  local v major
  v=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  major=${v%%.*}
  [[ $major == 1 ]] && major=$(echo "$v" | cut -d. -f2)
  if [[ $major =~ ^[0-9]+$ ]] && ((major < 17)); then
    die "java $v found, but Kafka $KAFKA_VERSION needs Java 17 or newer"
  fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# True if an HTTP server answers on 127.0.0.1:$1 (any status code).
http_answers() {
  local line
  # shellcheck disable=SC2016 # expanded by the inner shell
  line=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET / HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n" "$1" >&3
    IFS= read -r l <&3 && printf "%s" "$l"' _ "$1" 2>/dev/null) || return 1
  [[ $line == HTTP/* ]]
}

port_owner() { # best effort description of who listens on a port
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | sed -n '1s/.*users:((\(.*\)))/\1/p' || true
  fi
}

ensure_port_free() { # port, what
  if port_open "$1"; then
    local owner
    owner=$(port_owner "$1")
    die "port $1 (needed by $2) is already in use by another process${owner:+: $owner}; stop that process or choose another port with ${3:-the matching env variable}=<port>"
  fi
}

# pid from a pid file if that process is alive and its command line contains
# the given string (guards against a recycled pid).
live_pid() { # pidfile, cmdline-pattern
  local pid
  [[ -f $1 ]] || return 1
  pid=$(cat -- "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  local cmd
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$2"* ]] || return 1
  printf '%s' "$pid"
}

# Start a command detached (own session), recording its pid.
spawn() { # pidfile, logfile, cmd...
  local pidfile=$1 logfile=$2
  shift 2
  # The inner shell writes its own pid, then execs the command, so the pid
  # in the file is the server process itself.
  # shellcheck disable=SC2016 # expanded by the inner shell
  nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
    >>"$logfile" 2>&1 </dev/null &
  local i
  for i in $(seq 50); do
    [[ -s $pidfile ]] && return 0
    sleep 0.1
  done
  die "could not start $1"
}

stop_pid() { # name, pidfile, pattern
  local name=$1 pidfile=$2 pid i
  if ! pid=$(live_pid "$pidfile" "$3"); then
    if [[ -f $pidfile ]]; then
      rm -f -- "$pidfile"
      log "$name: not running (removed stale pid file)"
    else
      log "$name: not running"
    fi
    return 0
  fi
  log "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "$name: still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -f -- "$pidfile"
  log "$name: stopped"
}

# =================================================================== Kafka ==
KAFKA_PATTERN='kafka.Kafka '

kafka_install() {
  if [[ -f $KAFKA_MARKER ]]; then
    return 0
  fi
  require_tool mvn "to download the Kafka $KAFKA_VERSION jars from Maven Central"
  log "kafka: installing Kafka $KAFKA_VERSION (scala $KAFKA_SCALA_VERSION) + log4j $LOG4J_VERSION + slf4j $SLF4J_VERSION jars from Maven Central into $KAFKA_LIBS"
  mkdir -p -- "$KAFKA_HOME"
  cat >"$KAFKA_HOME/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/services.sh: only used to fetch the Kafka jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.egx</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$KAFKA_SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <!-- TopicCommand, used for the readiness check -->
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <exclusion>
          <groupId>org.apache.kafka</groupId>
          <artifactId>connect-runtime</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <!-- Kafka declares slf4j-api 1.7.x, which cannot see the slf4j2 binding -->
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>$MAVEN_DEPENDENCY_PLUGIN_VERSION</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
EOF
  rm -rf -- "$KAFKA_LIBS"
  mkdir -p -- "$RUN_DIR"
  local mvnlog=$RUN_DIR/kafka-install.log
  if ! (cd -- "$KAFKA_HOME" && mvn -B -ntp -Dstyle.color=never -f pom.xml \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=libs) >"$mvnlog" 2>&1; then
    tail -n 30 "$mvnlog" >&2
    die "kafka: 'mvn dependency:copy-dependencies' failed (full log: $mvnlog)"
  fi
  [[ -n $(ls "$KAFKA_LIBS"/kafka_"$KAFKA_SCALA_VERSION"-*.jar 2>/dev/null) ]] ||
    die "kafka: jars missing in $KAFKA_LIBS after download"
  touch -- "$KAFKA_MARKER"
  log "kafka: installed $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars"
}

kafka_write_config() {
  mkdir -p -- "$KAFKA_CONF_DIR" "$KAFKA_DATA" "$RUN_DIR"
  cat >"$KAFKA_CONF_DIR/server.properties" <<EOF
# Generated by scripts/services.sh -- single-node KRaft (combined mode).
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
log.dirs=$KAFKA_DATA
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$KAFKA_CONF_DIR/log4j2.properties" <<EOF
# Generated by scripts/services.sh -- broker log goes to $KAFKA_LOG
status = warn
name = egx-kafka
# Kafka logs its own shutdown after SIGTERM; log4j's shutdown hook would stop
# the logger first and swallow those lines.
shutdownHook = disable
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $KAFKA_LOG
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
  # Tools (StorageTool, TopicCommand) only print warnings, to stderr.
  cat >"$KAFKA_CONF_DIR/tools-log4j2.properties" <<EOF
status = warn
name = egx-kafka-tools
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
  cat >"$KAFKA_CONF_DIR/client.properties" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

kafka_tool() { # main-class args...
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$KAFKA_CONF_DIR/tools-log4j2.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

kafka_format() {
  if [[ -f $KAFKA_DATA/meta.properties ]]; then
    return 0
  fi
  local cluster_id
  cluster_id=$(kafka_tool kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
  [[ -n $cluster_id ]] || die "kafka: StorageTool random-uuid produced no cluster id"
  log "kafka: formatting storage in $KAFKA_DATA (cluster id $cluster_id)"
  kafka_tool kafka.tools.StorageTool format --standalone -t "$cluster_id" \
    -c "$KAFKA_CONF_DIR/server.properties" >>"$RUN_DIR/kafka-format.log" 2>&1 ||
    {
      tail -n 20 "$RUN_DIR/kafka-format.log" >&2
      die "kafka: storage format failed (log: $RUN_DIR/kafka-format.log)"
    }
}

# Real metadata request: list topics through the AdminClient.
kafka_answers() {
  kafka_tool org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
    --command-config "$KAFKA_CONF_DIR/client.properties" --list >/dev/null 2>&1
}

# Wait until the broker answers; on failure print the log tails and return 1.
kafka_wait_ready() { # pid
  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT)) why
  why="broker not ready after ${KAFKA_READY_TIMEOUT}s"
  while ((SECONDS < deadline)); do
    if ! kill -0 "$1" 2>/dev/null; then
      why="broker process $1 exited during startup"
      break
    fi
    if port_open "$KAFKA_PORT" && kafka_answers; then
      return 0
    fi
    sleep 1
  done
  {
    echo "---- tail of $KAFKA_LOG ----"
    tail -n 30 "$KAFKA_LOG" 2>/dev/null || true
    echo "---- tail of $KAFKA_STDOUT ----"
    tail -n 20 "$KAFKA_STDOUT" 2>/dev/null || true
  } >&2
  printf '[services] error: kafka: %s\n' "$why" >&2
  return 1
}

kafka_start() {
  local pid
  if pid=$(live_pid "$KAFKA_PID" "$KAFKA_PATTERN"); then
    if port_open "$KAFKA_PORT"; then
      log "kafka: already running (pid $pid, 127.0.0.1:$KAFKA_PORT)"
      return 0
    fi
    log "kafka: process $pid is up but port $KAFKA_PORT is not answering yet; waiting"
    kafka_wait_ready "$pid" || exit 1
    log "kafka: ready on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  rm -f -- "$KAFKA_PID"
  require_java
  ensure_port_free "$KAFKA_PORT" "the Kafka broker" KAFKA_PORT
  ensure_port_free "$KAFKA_CONTROLLER_PORT" "the Kafka controller" KAFKA_CONTROLLER_PORT
  kafka_install
  kafka_write_config
  kafka_format
  log "kafka: starting broker on 127.0.0.1:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT), log: $KAFKA_LOG"
  local heap
  read -r -a heap <<<"$KAFKA_HEAP_OPTS"
  spawn "$KAFKA_PID" "$KAFKA_STDOUT" \
    java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_CONF_DIR/log4j2.properties" \
    -Dkafka.logs.dir="$RUN_DIR" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF_DIR/server.properties"
  pid=$(cat -- "$KAFKA_PID")
  if ! kafka_wait_ready "$pid"; then
    kafka_stop >&2 # do not leave a half-started broker behind
    exit 1
  fi
  log "kafka: ready on 127.0.0.1:$KAFKA_PORT (pid $pid)"
}

kafka_stop() { stop_pid kafka "$KAFKA_PID" "$KAFKA_PATTERN"; }

kafka_status() {
  local pid
  if pid=$(live_pid "$KAFKA_PID" "$KAFKA_PATTERN"); then
    if port_open "$KAFKA_PORT"; then
      log "kafka: running (pid $pid, bootstrap 127.0.0.1:$KAFKA_PORT, log $KAFKA_LOG)"
      return 0
    fi
    log "kafka: process $pid alive but port $KAFKA_PORT not answering (log $KAFKA_LOG)"
    return 1
  fi
  if port_open "$KAFKA_PORT"; then
    log "kafka: not running (port $KAFKA_PORT is used by another process)"
  else
    log "kafka: not running"
  fi
  return 1
}

kafka_clean() {
  kafka_stop
  rm -rf -- "$KAFKA_DATA" "$KAFKA_CONF_DIR" "$KAFKA_LOG" "$KAFKA_STDOUT" "$RUN_DIR/kafka-format.log"
  log "kafka: deleted data in $KAFKA_DATA"
}

# ====================================================================== S3 ==
versitygw_install() {
  [[ -x $VERSITYGW_BIN && -f $VERSITYGW_MARKER ]] && return 0
  require_tool go "to build the S3 server ($VERSITYGW_MODULE@$VERSITYGW_VERSION)"
  log "s3: installing versitygw $VERSITYGW_VERSION with 'go install' into $CACHE_DIR/bin (takes a few minutes)"
  mkdir -p -- "$CACHE_DIR/bin"
  rm -f -- "$CACHE_DIR"/bin/.installed-versitygw-*
  mkdir -p -- "$RUN_DIR"
  local golog=$RUN_DIR/s3-install.log
  if ! GOBIN="$CACHE_DIR/bin" GOFLAGS=-buildvcs=false \
    go install "$VERSITYGW_MODULE@$VERSITYGW_VERSION" >"$golog" 2>&1; then
    tail -n 30 "$golog" >&2
    die "s3: 'go install $VERSITYGW_MODULE@$VERSITYGW_VERSION' failed (full log: $golog)"
  fi
  touch -- "$VERSITYGW_MARKER"
}

# Wait until the server answers HTTP; on failure print the log tail, return 1.
s3_wait_ready() { # pid
  local deadline=$((SECONDS + S3_READY_TIMEOUT)) why
  why="server not answering HTTP on 127.0.0.1:$S3_PORT after ${S3_READY_TIMEOUT}s"
  while ((SECONDS < deadline)); do
    if ! kill -0 "$1" 2>/dev/null; then
      why="server process $1 exited during startup"
      break
    fi
    http_answers "$S3_PORT" && return 0
    sleep 0.5
  done
  {
    echo "---- tail of $S3_LOG ----"
    tail -n 30 "$S3_LOG" 2>/dev/null || true
  } >&2
  printf '[services] error: s3: %s\n' "$why" >&2
  return 1
}

s3_start() {
  local pid
  if pid=$(live_pid "$S3_PID" "$VERSITYGW_BIN"); then
    if http_answers "$S3_PORT"; then
      log "s3: already running (pid $pid, http://127.0.0.1:$S3_PORT)"
      return 0
    fi
    log "s3: process $pid is up but not answering on port $S3_PORT yet; waiting"
    s3_wait_ready "$pid" || exit 1
    log "s3: ready on http://127.0.0.1:$S3_PORT"
    return 0
  fi
  rm -f -- "$S3_PID"
  ensure_port_free "$S3_PORT" "the S3 server" S3_PORT
  mkdir -p -- "$S3_DATA" "$RUN_DIR"
  versitygw_install
  log "s3: starting versitygw on http://127.0.0.1:$S3_PORT (data $S3_DATA), log: $S3_LOG"
  # Credentials go through the environment so they do not show in `ps`.
  ROOT_ACCESS_KEY=$S3_ACCESS_KEY ROOT_SECRET_KEY=$S3_SECRET_KEY \
    spawn "$S3_PID" "$S3_LOG" "$VERSITYGW_BIN" \
    --port "127.0.0.1:$S3_PORT" --region "$S3_REGION" \
    posix "$S3_DATA"
  pid=$(cat -- "$S3_PID")
  if ! s3_wait_ready "$pid"; then
    s3_stop >&2 # do not leave a half-started server behind
    exit 1
  fi
  log "s3: ready on http://127.0.0.1:$S3_PORT (pid $pid, versitygw, region $S3_REGION, path-style)"
}

s3_live_pid_any() {
  live_pid "$S3_PID" "$VERSITYGW_BIN"
}

s3_stop() {
  local pid
  if pid=$(s3_live_pid_any); then
    local exe
    exe=$(tr '\0' ' ' <"/proc/$pid/cmdline")
    stop_pid s3 "$S3_PID" "${exe%% *}"
  else
    stop_pid s3 "$S3_PID" "$VERSITYGW_BIN"
  fi
}

s3_status() {
  local pid
  if pid=$(s3_live_pid_any); then
    if http_answers "$S3_PORT"; then
      log "s3: running (pid $pid, http://127.0.0.1:$S3_PORT, log $S3_LOG)"
      return 0
    fi
    log "s3: process $pid alive but not answering HTTP on port $S3_PORT (log $S3_LOG)"
    return 1
  fi
  if port_open "$S3_PORT"; then
    log "s3: not running (port $S3_PORT is used by another process)"
  else
    log "s3: not running"
  fi
  return 1
}

s3_clean() {
  s3_stop
  rm -rf -- "$S3_DATA_ROOT" "$S3_LOG"
  log "s3: deleted data in $S3_DATA_ROOT"
}

# ============================================================ secured PKI ==
# Writes stdin to a file only its owner can read.
write_secret() { # file
  (umask 077 && cat >"$1")
}

random_secret() { openssl rand -hex 24; }

secure_dirs() {
  mkdir -p -- "$SECURE_DIR" "$KAFKA_SECURE_RUN" "$S3_TLS_RUN"
  chmod 700 -- "$SECURE_DIR" "$KAFKA_SECURE_RUN" "$S3_TLS_RUN"
}

# openssl config of the private CAs and of the server certificates.
pki_config() {
  cat >"$SECURE_DIR/openssl.cnf" <<'CNF'
# Generated by scripts/services.sh
[req]
distinguished_name = dn
prompt = no
[dn]
CN = egx-test
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
}

pki_new_ca() { # key-out, cert-out, common name
  (umask 077 && openssl req -x509 -new -config "$SECURE_DIR/openssl.cnf" -extensions v3_ca \
    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 365 \
    -subj "/CN=$3" -keyout "$1" -out "$2") >>"$SECURE_DIR/pki.log" 2>&1 ||
    die "openssl could not create the CA $3 (log: $SECURE_DIR/pki.log)"
}

# A key and certificate for 127.0.0.1/localhost signed by the private CA.
pki_server_cert() { # key-out, cert-out
  (umask 077 && openssl req -new -config "$SECURE_DIR/openssl.cnf" \
    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=localhost" -keyout "$1" -out "$1.csr" &&
    openssl x509 -req -in "$1.csr" -CA "$CA_PEM" -CAkey "$CA_KEY" \
      -set_serial "0x$(openssl rand -hex 16)" -days 365 -sha256 \
      -extfile "$SECURE_DIR/openssl.cnf" -extensions v3_server -out "$2") \
    >>"$SECURE_DIR/pki.log" 2>&1 ||
    die "openssl could not create the server certificate $2 (log: $SECURE_DIR/pki.log)"
  rm -f -- "$1.csr"
}

# The private CA: kept while a secured service that uses it is running, else created
# anew (with a second, unrelated CA whose key is thrown away).
secure_pki_ensure() { # name of the service being started
  require_tool openssl "to create the private CA and certificates of the secured services"
  secure_dirs
  pki_config
  local other
  case $1 in
  kafka-secure) other=s3_tls_ready ;;
  s3-tls) other=kafka_secure_ready ;;
  esac
  if [[ -s $CA_PEM && -s $CA_KEY && -s $OTHER_CA_PEM ]] && "$other" &&
    openssl x509 -checkend 86400 -noout -in "$CA_PEM" >/dev/null 2>&1; then
    return 0
  fi
  log "secure: creating a private CA ($CA_PEM) and an unrelated one ($OTHER_CA_PEM)"
  rm -f -- "$CA_PEM" "$CA_KEY" "$OTHER_CA_PEM" "$SECURE_DIR/pki.log"
  pki_new_ca "$CA_KEY" "$CA_PEM" "egx-test-ca"
  pki_new_ca "$SECURE_DIR/other-ca.key" "$OTHER_CA_PEM" "egx-test-other-ca"
  rm -f -- "$SECURE_DIR/other-ca.key"
}

# (Re)writes $SECURE_ENV from the CA and the credentials of the secured services that
# are up; removes it when neither is.
secure_write_env() {
  [[ -d $SECURE_DIR ]] || return 0
  if [[ ! -f $KAFKA_SECURE_ENV && ! -f $S3_TLS_ENV ]]; then
    rm -f -- "$SECURE_ENV"
    return 0
  fi
  {
    echo "# Generated by scripts/services.sh at each start of kafka-secure / s3-tls. Secret."
    printf 'export EGX_TEST_CA=%q\n' "$CA_PEM"
    printf 'export EGX_TEST_OTHER_CA=%q\n' "$OTHER_CA_PEM"
    cat -- "$KAFKA_SECURE_ENV" "$S3_TLS_ENV" 2>/dev/null || true
  } | write_secret "$SECURE_ENV.tmp"
  mv -f -- "$SECURE_ENV.tmp" "$SECURE_ENV"
}

# ============================================================ kafka-secure ==
KAFKA_SECURE_PATTERN="kafka.Kafka $KAFKA_SECURE_CONF/server.properties"
KAFKA_SECURE_ADMIN=egx-admin # super user, only on the internal listener

kafka_secure_tool() { # main-class-or-@argfile args...
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$KAFKA_SECURE_CONF/tools-log4j2.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

# Fresh passwords, keystore and configuration; the format arguments (with the SCRAM
# passwords) go to a java @argfile so they never appear on a command line.
kafka_secure_write_config() {
  local admin_pw scram_pw plain_pw readonly_pw nogroup_pw store_pw jaas_admin cluster_id
  admin_pw=$(random_secret)
  scram_pw=$(random_secret)
  plain_pw=$(random_secret)
  readonly_pw=$(random_secret)
  nogroup_pw=$(random_secret)
  store_pw=$(random_secret)
  rm -rf -- "$KAFKA_SECURE_CONF"
  mkdir -p -- "$KAFKA_SECURE_CONF"
  chmod 700 -- "$KAFKA_SECURE_CONF"
  mkdir -p -- "$KAFKA_SECURE_DATA"

  pki_server_cert "$KAFKA_SECURE_CONF/server.key" "$KAFKA_SECURE_CONF/server.pem"
  STORE_PW=$store_pw openssl pkcs12 -export -name kafka \
    -in "$KAFKA_SECURE_CONF/server.pem" -inkey "$KAFKA_SECURE_CONF/server.key" \
    -certfile "$CA_PEM" -passout env:STORE_PW \
    -out "$KAFKA_SECURE_CONF/server.p12" >>"$SECURE_DIR/pki.log" 2>&1 ||
    die "kafka-secure: openssl could not write the PKCS12 keystore (log: $SECURE_DIR/pki.log)"
  chmod 600 -- "$KAFKA_SECURE_CONF/server.p12"

  jaas_admin="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"$KAFKA_SECURE_ADMIN\" password=\"$admin_pw\" user_$KAFKA_SECURE_ADMIN=\"$admin_pw\";"
  write_secret "$KAFKA_SECURE_CONF/server.properties" <<EOP
# Generated by scripts/services.sh -- single-node KRaft (combined mode) with SASL_SSL
# for clients, the StandardAuthorizer and ACLs. Secret: regenerated at each start.
process.roles=broker,controller
node.id=1
listeners=SECURE://127.0.0.1:$KAFKA_SECURE_PORT,INTERNAL://127.0.0.1:$KAFKA_SECURE_INTERNAL_PORT,CONTROLLER://127.0.0.1:$KAFKA_SECURE_CONTROLLER_PORT
advertised.listeners=SECURE://127.0.0.1:$KAFKA_SECURE_PORT,INTERNAL://127.0.0.1:$KAFKA_SECURE_INTERNAL_PORT
listener.security.protocol.map=SECURE:SASL_SSL,INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_SECURE_CONTROLLER_PORT
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.mechanism.controller.protocol=PLAIN

listener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.secure.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.secure.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_egx-plain="$plain_pw";
listener.name.secure.ssl.keystore.type=PKCS12
listener.name.secure.ssl.keystore.location=$KAFKA_SECURE_CONF/server.p12
listener.name.secure.ssl.keystore.password=$store_pw
listener.name.secure.ssl.key.password=$store_pw
listener.name.secure.ssl.client.auth=none
listener.name.internal.sasl.enabled.mechanisms=PLAIN
listener.name.internal.plain.sasl.jaas.config=$jaas_admin
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=$jaas_admin

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:$KAFKA_SECURE_ADMIN

log.dirs=$KAFKA_SECURE_DATA
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
group.initial.rebalance.delay.ms=0
EOP

  cat >"$KAFKA_SECURE_CONF/log4j2.properties" <<EOP
# Generated by scripts/services.sh -- broker log goes to $KAFKA_SECURE_LOG
status = warn
name = egx-kafka-secure
shutdownHook = disable
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $KAFKA_SECURE_LOG
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOP
  cat >"$KAFKA_SECURE_CONF/tools-log4j2.properties" <<EOP
status = warn
name = egx-kafka-secure-tools
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOP
  # Admin tools: the super user on the internal listener.
  write_secret "$KAFKA_SECURE_CONF/admin.properties" <<EOP
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$KAFKA_SECURE_ADMIN" password="$admin_pw";
request.timeout.ms=5000
default.api.timeout.ms=10000
EOP
  # Readiness check: a test user over SASL_SSL, trusting only the private CA.
  write_secret "$KAFKA_SECURE_CONF/client.properties" <<EOP
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="egx-scram" password="$scram_pw";
ssl.truststore.type=PEM
ssl.truststore.location=$CA_PEM
request.timeout.ms=5000
default.api.timeout.ms=10000
EOP
  cluster_id=$(kafka_secure_tool kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
  [[ -n $cluster_id ]] || die "kafka-secure: StorageTool random-uuid produced no cluster id"
  # StorageTool format arguments, SCRAM users included (java @argfile: not in `ps`).
  write_secret "$KAFKA_SECURE_CONF/format.args" <<EOP
kafka.tools.StorageTool
format
--standalone
--cluster-id
$cluster_id
--config
$KAFKA_SECURE_CONF/server.properties
--add-scram
SCRAM-SHA-512=[name=egx-scram,password=$scram_pw]
--add-scram
SCRAM-SHA-512=[name=egx-readonly,password=$readonly_pw]
--add-scram
SCRAM-SHA-512=[name=egx-nogroup,password=$nogroup_pw]
EOP
  # What the tests get once the broker is ready.
  write_secret "$KAFKA_SECURE_ENV.pending" <<EOP
export EGX_TEST_SECURE_KAFKA=127.0.0.1:$KAFKA_SECURE_PORT
export EGX_TEST_SCRAM_USER=egx-scram
export EGX_TEST_SCRAM_PASSWORD=$scram_pw
export EGX_TEST_PLAIN_USER=egx-plain
export EGX_TEST_PLAIN_PASSWORD=$plain_pw
export EGX_TEST_READONLY_USER=egx-readonly
export EGX_TEST_READONLY_PASSWORD=$readonly_pw
export EGX_TEST_NOGROUP_USER=egx-nogroup
export EGX_TEST_NOGROUP_PASSWORD=$nogroup_pw
EOP
}

# Fresh storage at each start: the SCRAM users are part of the bootstrap metadata.
kafka_secure_format() {
  local flog=$KAFKA_SECURE_RUN/format.log
  rm -rf -- "$KAFKA_SECURE_DATA"
  mkdir -p -- "$KAFKA_SECURE_DATA"
  local rc=0
  # The tool prints the bootstrap records; keep the SCRAM salts and keys out of the log.
  kafka_secure_tool "@$KAFKA_SECURE_CONF/format.args" 2>&1 |
    sed -E "s/(UserScramCredentialRecord\(name='[^']*', mechanism=[0-9]+)[^)]*\)/\1, <salt and keys redacted>)/g" \
      >"$flog" || rc=$?
  rm -f -- "$KAFKA_SECURE_CONF/format.args"
  if ((rc != 0)); then
    tail -n 20 "$flog" >&2
    die "kafka-secure: storage format failed (log: $flog)"
  fi
}

# The ACLs (see the top of this file), through the internal listener as the super user.
kafka_secure_acls() {
  local acl=(org.apache.kafka.tools.AclCommand
    --bootstrap-server "127.0.0.1:$KAFKA_SECURE_INTERNAL_PORT"
    --command-config "$KAFKA_SECURE_CONF/admin.properties" --add
    --resource-pattern-type prefixed)
  kafka_secure_tool "${acl[@]}" --topic secure- --group secure- \
    --allow-principal User:egx-scram --allow-principal User:egx-plain \
    --allow-principal User:egx-readonly \
    --operation Read --operation Describe &&
    kafka_secure_tool "${acl[@]}" --topic secure- \
      --allow-principal User:egx-scram --allow-principal User:egx-plain \
      --allow-principal User:egx-nogroup \
      --operation Write --operation Create --operation DescribeConfigs --operation Read \
      --operation Describe
}

# Real metadata request over SASL_SSL as egx-scram, trusting only the private CA.
kafka_secure_answers() {
  kafka_secure_tool org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_SECURE_PORT" \
    --command-config "$KAFKA_SECURE_CONF/client.properties" --list >/dev/null 2>&1
}

kafka_secure_fail() { # pid-or-empty, why
  {
    echo "---- tail of $KAFKA_SECURE_LOG ----"
    tail -n 30 "$KAFKA_SECURE_LOG" 2>/dev/null || true
    echo "---- tail of $KAFKA_SECURE_STDOUT ----"
    tail -n 20 "$KAFKA_SECURE_STDOUT" 2>/dev/null || true
    if [[ -s $KAFKA_SECURE_RUN/acl.log ]]; then
      echo "---- tail of $KAFKA_SECURE_RUN/acl.log ----"
      tail -n 20 "$KAFKA_SECURE_RUN/acl.log"
    fi
  } >&2
  printf '[services] error: kafka-secure: %s\n' "$2" >&2
  return 1
}

# Wait until both listeners accept connections, create the ACLs, then check a real
# request over SASL_SSL; on failure print the log tails and return 1.
kafka_secure_wait_ready() { # pid
  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT))
  until port_open "$KAFKA_SECURE_PORT" && port_open "$KAFKA_SECURE_INTERNAL_PORT"; do
    kill -0 "$1" 2>/dev/null || kafka_secure_fail "$1" "broker process $1 exited during startup" || return 1
    ((SECONDS < deadline)) || kafka_secure_fail "$1" "broker not listening after ${KAFKA_READY_TIMEOUT}s" || return 1
    sleep 0.5
  done
  : >"$KAFKA_SECURE_RUN/acl.log"
  until kafka_secure_acls >>"$KAFKA_SECURE_RUN/acl.log" 2>&1; do
    kill -0 "$1" 2>/dev/null || kafka_secure_fail "$1" "broker process $1 exited during startup" || return 1
    ((SECONDS < deadline)) || kafka_secure_fail "$1" "could not create the ACLs within ${KAFKA_READY_TIMEOUT}s" || return 1
    sleep 1
  done
  until kafka_secure_answers; do
    kill -0 "$1" 2>/dev/null || kafka_secure_fail "$1" "broker process $1 exited during startup" || return 1
    ((SECONDS < deadline)) || kafka_secure_fail "$1" "no answer over SASL_SSL on 127.0.0.1:$KAFKA_SECURE_PORT after ${KAFKA_READY_TIMEOUT}s" || return 1
    sleep 1
  done
}

# True if the broker is up and was fully set up (its credentials are written).
kafka_secure_ready() {
  live_pid "$KAFKA_SECURE_PID" "$KAFKA_SECURE_PATTERN" >/dev/null &&
    [[ -f $KAFKA_SECURE_ENV ]] && port_open "$KAFKA_SECURE_PORT"
}

kafka_secure_start() {
  local pid
  if pid=$(live_pid "$KAFKA_SECURE_PID" "$KAFKA_SECURE_PATTERN"); then
    if [[ -f $KAFKA_SECURE_ENV ]] && port_open "$KAFKA_SECURE_PORT"; then
      log "kafka-secure: already running (pid $pid, SASL_SSL 127.0.0.1:$KAFKA_SECURE_PORT)"
      secure_write_env
      return 0
    fi
    # Up but never finished its setup (an interrupted start): start it afresh.
    warn "kafka-secure: process $pid is up but not fully set up; restarting it"
    kafka_secure_stop
  fi
  rm -f -- "$KAFKA_SECURE_PID" "$KAFKA_SECURE_ENV"
  secure_write_env
  require_java
  ensure_port_free "$KAFKA_SECURE_PORT" "the secured Kafka broker (SASL_SSL)" KAFKA_SECURE_PORT
  ensure_port_free "$KAFKA_SECURE_INTERNAL_PORT" "the secured Kafka broker (internal listener)" KAFKA_SECURE_INTERNAL_PORT
  ensure_port_free "$KAFKA_SECURE_CONTROLLER_PORT" "the secured Kafka controller" KAFKA_SECURE_CONTROLLER_PORT
  kafka_install
  secure_pki_ensure kafka-secure
  kafka_secure_write_config
  kafka_secure_format
  log "kafka-secure: starting broker with SASL_SSL on 127.0.0.1:$KAFKA_SECURE_PORT (internal :$KAFKA_SECURE_INTERNAL_PORT, controller :$KAFKA_SECURE_CONTROLLER_PORT), log: $KAFKA_SECURE_LOG"
  local heap
  read -r -a heap <<<"$KAFKA_SECURE_HEAP_OPTS"
  spawn "$KAFKA_SECURE_PID" "$KAFKA_SECURE_STDOUT" \
    java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_SECURE_CONF/log4j2.properties" \
    -Dkafka.logs.dir="$KAFKA_SECURE_RUN" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_SECURE_CONF/server.properties"
  pid=$(cat -- "$KAFKA_SECURE_PID")
  if ! kafka_secure_wait_ready "$pid"; then
    kafka_secure_stop >&2 # do not leave a half-started broker behind
    exit 1
  fi
  mv -f -- "$KAFKA_SECURE_ENV.pending" "$KAFKA_SECURE_ENV"
  secure_write_env
  log "kafka-secure: ready on 127.0.0.1:$KAFKA_SECURE_PORT (pid $pid, SASL_SSL with SCRAM-SHA-512 and PLAIN, ACLs; credentials: $SECURE_ENV)"
}

kafka_secure_stop() {
  stop_pid kafka-secure "$KAFKA_SECURE_PID" "$KAFKA_SECURE_PATTERN"
  rm -f -- "$KAFKA_SECURE_ENV" "$KAFKA_SECURE_ENV.pending"
  secure_write_env
  secure_drop_ca_key
}

kafka_secure_status() {
  local pid
  if pid=$(live_pid "$KAFKA_SECURE_PID" "$KAFKA_SECURE_PATTERN"); then
    if [[ -f $KAFKA_SECURE_ENV ]] && port_open "$KAFKA_SECURE_PORT"; then
      log "kafka-secure: running (pid $pid, SASL_SSL 127.0.0.1:$KAFKA_SECURE_PORT, log $KAFKA_SECURE_LOG, credentials $SECURE_ENV)"
      return 0
    fi
    if [[ ! -f $KAFKA_SECURE_ENV ]]; then
      log "kafka-secure: process $pid alive but its start did not finish (no credentials written; run '$0 start kafka-secure')"
    else
      log "kafka-secure: process $pid alive but port $KAFKA_SECURE_PORT not answering (log $KAFKA_SECURE_LOG)"
    fi
    return 1
  fi
  if port_open "$KAFKA_SECURE_PORT"; then
    log "kafka-secure: not running (port $KAFKA_SECURE_PORT is used by another process)"
  else
    log "kafka-secure: not running"
  fi
  return 1
}

kafka_secure_clean() {
  kafka_secure_stop
  rm -rf -- "$KAFKA_SECURE_DATA" "$KAFKA_SECURE_RUN"
  log "kafka-secure: deleted data in $KAFKA_SECURE_DATA and $KAFKA_SECURE_RUN"
  secure_clean_shared
}

# ================================================================== s3-tls ==
S3_TLS_PATTERN="posix $S3_TLS_DATA"

# True if the server answers HTTPS with a certificate the private CA vouches for.
https_answers() { # port
  local code
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 \
    --cacert "$CA_PEM" "https://127.0.0.1:$1/" 2>/dev/null) || return 1
  [[ $code =~ ^[1-5][0-9][0-9]$ ]]
}

s3_tls_ready() {
  live_pid "$S3_TLS_PID" "$S3_TLS_PATTERN" >/dev/null &&
    [[ -f $S3_TLS_ENV ]] && https_answers "$S3_TLS_PORT"
}

s3_tls_wait_ready() { # pid
  local deadline=$((SECONDS + S3_READY_TIMEOUT)) why
  why="server not answering HTTPS on 127.0.0.1:$S3_TLS_PORT after ${S3_READY_TIMEOUT}s"
  while ((SECONDS < deadline)); do
    if ! kill -0 "$1" 2>/dev/null; then
      why="server process $1 exited during startup"
      break
    fi
    https_answers "$S3_TLS_PORT" && return 0
    sleep 0.5
  done
  {
    echo "---- tail of $S3_TLS_LOG ----"
    tail -n 30 "$S3_TLS_LOG" 2>/dev/null || true
  } >&2
  printf '[services] error: s3-tls: %s\n' "$why" >&2
  return 1
}

s3_tls_start() {
  local pid
  if pid=$(live_pid "$S3_TLS_PID" "$S3_TLS_PATTERN"); then
    if [[ -f $S3_TLS_ENV ]] && https_answers "$S3_TLS_PORT"; then
      log "s3-tls: already running (pid $pid, https://127.0.0.1:$S3_TLS_PORT)"
      secure_write_env
      return 0
    fi
    warn "s3-tls: process $pid is up but not fully set up; restarting it"
    s3_tls_stop
  fi
  rm -f -- "$S3_TLS_PID" "$S3_TLS_ENV"
  secure_write_env
  require_tool curl "to check that the HTTPS S3 server answers"
  ensure_port_free "$S3_TLS_PORT" "the HTTPS S3 server" S3_TLS_PORT
  versitygw_install
  secure_pki_ensure s3-tls
  mkdir -p -- "$S3_TLS_DATA"
  pki_server_cert "$S3_TLS_RUN/server.key" "$S3_TLS_RUN/server.pem"
  local access_key secret_key
  access_key=egx$(openssl rand -hex 8)
  secret_key=$(random_secret)
  log "s3-tls: starting versitygw on https://127.0.0.1:$S3_TLS_PORT (data $S3_TLS_DATA), log: $S3_TLS_LOG"
  # Credentials go through the environment so they do not show in `ps`.
  ROOT_ACCESS_KEY=$access_key ROOT_SECRET_KEY=$secret_key \
    spawn "$S3_TLS_PID" "$S3_TLS_LOG" "$VERSITYGW_BIN" \
    --port "127.0.0.1:$S3_TLS_PORT" --region "$S3_REGION" \
    --cert "$S3_TLS_RUN/server.pem" --key "$S3_TLS_RUN/server.key" \
    posix "$S3_TLS_DATA"
  pid=$(cat -- "$S3_TLS_PID")
  if ! s3_tls_wait_ready "$pid"; then
    s3_tls_stop >&2 # do not leave a half-started server behind
    exit 1
  fi
  write_secret "$S3_TLS_ENV" <<EOP
export EGX_TEST_S3_TLS=https://127.0.0.1:$S3_TLS_PORT
export EGX_TEST_S3_TLS_ACCESS_KEY=$access_key
export EGX_TEST_S3_TLS_SECRET_KEY=$secret_key
EOP
  secure_write_env
  log "s3-tls: ready on https://127.0.0.1:$S3_TLS_PORT (pid $pid, region $S3_REGION, path-style; credentials: $SECURE_ENV)"
}

s3_tls_stop() {
  stop_pid s3-tls "$S3_TLS_PID" "$S3_TLS_PATTERN"
  rm -f -- "$S3_TLS_ENV"
  secure_write_env
  secure_drop_ca_key
}

s3_tls_status() {
  local pid
  if pid=$(live_pid "$S3_TLS_PID" "$S3_TLS_PATTERN"); then
    if [[ -f $S3_TLS_ENV ]] && https_answers "$S3_TLS_PORT"; then
      log "s3-tls: running (pid $pid, https://127.0.0.1:$S3_TLS_PORT, log $S3_TLS_LOG, credentials $SECURE_ENV)"
      return 0
    fi
    if [[ ! -f $S3_TLS_ENV ]]; then
      log "s3-tls: process $pid alive but its start did not finish (no credentials written; run '$0 start s3-tls')"
    else
      log "s3-tls: process $pid alive but not answering HTTPS on port $S3_TLS_PORT (log $S3_TLS_LOG)"
    fi
    return 1
  fi
  if port_open "$S3_TLS_PORT"; then
    log "s3-tls: not running (port $S3_TLS_PORT is used by another process)"
  else
    log "s3-tls: not running"
  fi
  return 1
}

s3_tls_clean() {
  s3_tls_stop
  rm -rf -- "$S3_TLS_DATA" "$S3_TLS_RUN"
  log "s3-tls: deleted data in $S3_TLS_DATA and $S3_TLS_RUN"
  secure_clean_shared
}

# The CA's private key goes once no secured service is left (a start makes a new CA).
secure_drop_ca_key() {
  if ! live_pid "$KAFKA_SECURE_PID" "$KAFKA_SECURE_PATTERN" >/dev/null &&
    ! live_pid "$S3_TLS_PID" "$S3_TLS_PATTERN" >/dev/null; then
    rm -f -- "$CA_KEY"
  fi
}

# The CAs go once no secured service is left.
secure_clean_shared() {
  if ! live_pid "$KAFKA_SECURE_PID" "$KAFKA_SECURE_PATTERN" >/dev/null &&
    ! live_pid "$S3_TLS_PID" "$S3_TLS_PATTERN" >/dev/null; then
    rm -rf -- "$SECURE_DIR"
  fi
}

# ==================================================================== main ==
usage() {
  cat >&2 <<EOF
usage: $0 start|stop|status|restart|clean [kafka|s3|kafka-secure|s3-tls]
  start    install if needed, start and wait until ready (no-op if running)
  stop     stop (SIGTERM, then SIGKILL after ${STOP_TIMEOUT}s)
  status   show state; exit 0 only if every selected service is running
  restart  stop, then start
  clean    stop and delete data dirs and logs (installed binaries are kept)
env: KAFKA_PORT ($KAFKA_PORT) KAFKA_CONTROLLER_PORT ($KAFKA_CONTROLLER_PORT)
     S3_PORT ($S3_PORT) S3_ACCESS_KEY S3_SECRET_KEY
     KAFKA_SECURE_PORT ($KAFKA_SECURE_PORT) KAFKA_SECURE_INTERNAL_PORT ($KAFKA_SECURE_INTERNAL_PORT)
     KAFKA_SECURE_CONTROLLER_PORT ($KAFKA_SECURE_CONTROLLER_PORT) S3_TLS_PORT ($S3_TLS_PORT)
     EGX_CACHE_DIR ($CACHE_DIR) EGX_SERVICES_DIR ($STATE_DIR)
EOF
  exit 2
}

main() {
  (($# >= 1 && $# <= 2)) || usage
  local action=$1 services
  case ${2:-all} in
  all) services=(kafka s3 kafka-secure s3-tls) ;;
  kafka | s3 | kafka-secure | s3-tls) services=("$2") ;;
  *) usage ;;
  esac
  services=("${services[@]//-/_}") # kafka-secure -> kafka_secure_start, ...
  local svc rc=0
  case $action in
  start) for svc in "${services[@]}"; do "${svc}_start"; done ;;
  stop) for svc in "${services[@]}"; do "${svc}_stop"; done ;;
  restart)
    for svc in "${services[@]}"; do "${svc}_stop"; done
    for svc in "${services[@]}"; do "${svc}_start"; done
    ;;
  status) for svc in "${services[@]}"; do "${svc}_status" || rc=3; done ;;
  clean) for svc in "${services[@]}"; do "${svc}_clean"; done ;;
  *) usage ;;
  esac
  return "$rc"
}

main "$@"
