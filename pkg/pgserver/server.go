package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Defaults of the application role and database: the original
// system_monitor's, so that existing dashboards and habits keep working.
const (
	DefaultUser     = "system_monitor"
	DefaultPassword = "system_monitor_password"
	DefaultDatabase = "system_monitor"
)

// superuser is the bootstrap role initdb creates; it logs in only over the
// private unix socket.
const superuser = "postgres"

// logFileName is the server's log inside the data directory. It is written
// by the server through an inherited descriptor, so it survives our exit.
const logFileName = "sysmon-postgres.log"

// Options configures Start.
type Options struct {
	// DataDir is the cluster's directory; initdb runs there when it holds
	// no PG_VERSION. Required.
	DataDir string
	// Port on 127.0.0.1; 0 picks a free port, kept across StartAgain and
	// remembered in the data directory for the next Start.
	Port int
	// User, Password and Database of the application role; defaults
	// DefaultUser, DefaultPassword, DefaultDatabase.
	User, Password, Database string
	// Ephemeral trades durability for speed (fsync off, initdb --no-sync):
	// for tests and demos whose data is thrown away.
	Ephemeral bool
	// Settings are extra server parameters passed as -c name=value.
	Settings map[string]string
	// Logger receives lifecycle messages; nil discards them.
	Logger *slog.Logger
}

// Server is a running (or stopped) private PostgreSQL cluster.
type Server struct {
	o       Options
	binDir  string
	dataDir string
	sockDir string
	cred    *credential // nil when we are not root
	log     *slog.Logger

	mu       sync.Mutex
	port     int
	flexPort bool // Options.Port was 0: any free port will do
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd exits
	waitErr  error
	closed   bool
}

// Start initialises the cluster if needed, starts it, waits until it accepts
// connections and makes sure the application role and database exist. It is
// idempotent over restarts of the caller: an existing data directory is
// reused. On error nothing is left running.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.DataDir == "" {
		return nil, errors.New("start postgres: no data directory given")
	}
	if o.User == "" {
		o.User = DefaultUser
	}
	if o.Password == "" {
		o.Password = DefaultPassword
	}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	binDir, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: data dir %s: %w", o.DataDir, err)
	}
	s := &Server{o: o, binDir: binDir, dataDir: dataDir, log: lg.With("component", "pgserver"), port: o.Port}
	if os.Geteuid() == 0 {
		if s.cred, err = postgresAccount(); err != nil {
			return nil, err
		}
	}
	if err := s.prepareDataDir(ctx); err != nil {
		return nil, err
	}
	if o.Port == 0 {
		s.flexPort = true
		s.port = s.savedPort()
	}
	s.sockDir, err = os.MkdirTemp("", "sysmon-pg-")
	if err != nil {
		return nil, fmt.Errorf("start postgres: socket dir: %w", err)
	}
	if err := s.own(s.sockDir); err != nil {
		os.RemoveAll(s.sockDir)
		return nil, err
	}
	if err := s.StartAgain(ctx); err != nil {
		os.RemoveAll(s.sockDir)
		return nil, err
	}
	if err := s.ensureRoleAndDB(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.log.Info("postgres ready", "url", s.redactedURL(), "data_dir", s.dataDir, "bin_dir", s.binDir)
	return s, nil
}

// accountName is the unprivileged account the server runs as when we are
// root; Debian's postgresql package creates it.
var accountName = "postgres"

// postgresAccount returns the credentials of the `postgres` OS account,
// which the server runs as when we are root.
func postgresAccount() (*credential, error) {
	u, err := user.Lookup(accountName)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no `%s` OS account to run it as (%v); create one with: useradd --system --user-group --home-dir /var/lib/postgresql --shell /usr/sbin/nologin %s", accountName, err, accountName)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("postgres account has non-numeric uid/gid %q/%q", u.Uid, u.Gid)
	}
	return &credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// own hands path to the server's account when we run as root.
func (s *Server) own(path string) error {
	if s.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
		return fmt.Errorf("chown %s to postgres: %w", path, err)
	}
	return nil
}

// prepareDataDir creates the data directory with the modes PostgreSQL
// demands and runs initdb when the directory holds no cluster yet.
func (s *Server) prepareDataDir(ctx context.Context) error {
	if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", s.dataDir, err)
	}
	if s.cred != nil {
		if err := s.chownTree(s.dataDir); err != nil {
			return err
		}
		if err := makeTraversable(filepath.Dir(s.dataDir), s.log); err != nil {
			return err
		}
	}
	// postgres refuses a data directory readable by others.
	if err := os.Chmod(s.dataDir, 0o700); err != nil {
		return fmt.Errorf("chmod data dir %s: %w", s.dataDir, err)
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "PG_VERSION")); err == nil {
		return nil
	}
	args := []string{"-D", s.dataDir, "-U", superuser, "--encoding=UTF8", "--no-locale",
		"--auth-local=trust", "--auth-host=scram-sha-256"}
	if s.o.Ephemeral {
		args = append(args, "--no-sync")
	}
	s.log.Info("initdb", "data_dir", s.dataDir)
	cmd := exec.CommandContext(ctx, binPath(s.binDir, "initdb"), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	s.prepareCmd(cmd)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb %s: %w: %s", s.dataDir, err, tail(out.String(), 20))
	}
	// Our own pg_hba.conf, so the policy does not depend on the version's
	// initdb defaults: socket trusted (its directory is private), TCP on
	// loopback with a password, nothing else.
	hba := "# written by sysmon pgserver\n" +
		"local all all trust\n" +
		"host  all all 127.0.0.1/32 scram-sha-256\n" +
		"host  all all ::1/128      scram-sha-256\n"
	hbaPath := filepath.Join(s.dataDir, "pg_hba.conf")
	if err := os.WriteFile(hbaPath, []byte(hba), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", hbaPath, err)
	}
	return s.own(hbaPath)
}

func (s *Server) chownTree(root string) error {
	uid, gid := int(s.cred.Uid), int(s.cred.Gid)
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("stat data dir: %w", err)
	}
	if owner, ok := fileOwner(fi); ok && owner == uid {
		return nil // already ours: skip walking a large cluster
	}
	err = filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("chown data dir %s to postgres: %w", root, err)
	}
	return nil
}

// makeTraversable adds the search (x) bit for others on dir and its parents,
// so the postgres account can reach a data directory under, say, a 0700
// temporary directory of root's. Read permission is never added.
func makeTraversable(dir string, lg *slog.Logger) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			mode := fi.Mode().Perm() | 0o001
			if err := os.Chmod(d, mode); err != nil {
				return fmt.Errorf("make %s traversable for postgres: %w", d, err)
			}
			lg.Info("made directory traversable for the postgres account", "dir", d, "mode", fmt.Sprintf("%#o", mode))
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// prepareCmd runs cmd as the postgres account when we are root, in its own
// process group (a terminal's Ctrl-C reaches us, and we stop the server in
// order), with a clean environment: PG* variables of the caller would
// redirect initdb and postgres.
func (s *Server) prepareCmd(cmd *exec.Cmd) {
	cmd.Dir = "/"
	env := []string{"LC_ALL=C", "LANG=C"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	cmd.SysProcAttr = procAttr(s.cred)
}

// StartAgain starts the server of an initialised cluster on the same port
// and socket directory, after Stop. It waits until the server accepts
// connections. It does nothing when the server runs.
func (s *Server) StartAgain(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("start postgres: server closed")
	}
	if s.running() {
		return nil
	}
	if err := s.waitStaleServer(ctx); err != nil {
		return err
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if s.port == 0 {
			if s.port, err = freePort(); err != nil {
				return err
			}
		}
		err = s.launch(ctx)
		if err == nil {
			if s.flexPort {
				s.savePort()
			}
			return nil
		}
		// A free port can be taken between our probe and the server's
		// bind, or the remembered one since the last run; try another.
		if !s.flexPort || !strings.Contains(err.Error(), "could not") {
			break
		}
		s.port = 0
	}
	return err
}

// portFileName remembers, in the data directory, the port picked when
// Options.Port is 0, so that the URL (a Grafana data source, say) stays the
// same across restarts of the process.
const portFileName = "sysmon-port"

func (s *Server) savedPort() int {
	b, err := os.ReadFile(filepath.Join(s.dataDir, portFileName))
	if err != nil {
		return 0
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || p <= 0 || p > 65535 {
		return 0
	}
	return p
}

func (s *Server) savePort() {
	path := filepath.Join(s.dataDir, portFileName)
	if err := os.WriteFile(path, []byte(strconv.Itoa(s.port)+"\n"), 0o600); err != nil {
		s.log.Warn("cannot remember the port", "file", path, "err", err)
	}
}

func (s *Server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// waitStaleServer waits for a server left over by a previous run of ours
// (still shutting down after we were killed) to release the data directory.
func (s *Server) waitStaleServer(ctx context.Context) error {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "postmaster.pid"))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return nil
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || !strings.HasPrefix(string(comm), "postgres") {
			return nil // gone, or the pid was reused: postgres handles the stale file
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("start postgres: data dir %s is in use by postgres pid %d; stop it first", s.dataDir, pid)
		}
		s.log.Info("waiting for a previous postgres to exit", "pid", pid)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// The kernel sends Pdeathsig when the thread that forked the child exits,
// not the process. Go ends a thread when a goroutine locked to it exits,
// and any thread may have forked the server; so the server is forked from
// one goroutine locked to its thread for the life of the process.
var (
	spawnOnce sync.Once
	spawnReqs chan func()
)

func startFromSpawner(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as we do
			for f := range spawnReqs {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnReqs <- func() { errc <- cmd.Start() }
	return <-errc
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch starts postgres and waits until it accepts connections; s.mu held.
func (s *Server) launch(ctx context.Context) error {
	logPath := filepath.Join(s.dataDir, logFileName)
	rotateLog(logPath)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open postgres log %s: %w", logPath, err)
	}
	defer logf.Close() // the child holds its own descriptor
	logStart, _ := logf.Seek(0, io.SeekEnd)

	args := []string{"-D", s.dataDir, "-p", strconv.Itoa(s.port), "-k", s.sockDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "password_encryption=scram-sha-256",
		"-c", "max_connections=200",
	}
	if s.o.Ephemeral {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	for k, v := range s.o.Settings {
		args = append(args, "-c", k+"="+v)
	}
	cmd := exec.Command(binPath(s.binDir, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	s.prepareCmd(cmd)
	if err := startFromSpawner(cmd); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go func() {
		// waitErr is read only after exited is closed: no lock, which
		// Stop and kill hold while they wait for this very close.
		s.waitErr = cmd.Wait()
		s.log.Info("postgres exited", "pid", cmd.Process.Pid, "status", fmt.Sprint(s.waitErr))
		close(exited)
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := s.superConn(ctx, "postgres")
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		var wait error
		select {
		case <-exited:
			wait = fmt.Errorf("postgres exited during start-up: %s", readTail(logPath, logStart, 20))
		case <-ctx.Done():
			wait = ctx.Err()
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				wait = fmt.Errorf("postgres not ready after 60s: %w; log: %s", err, readTail(logPath, logStart, 20))
			}
		}
		if wait != nil {
			s.kill()
			return fmt.Errorf("start postgres on port %d: %w", s.port, wait)
		}
	}
}

// rotateLog keeps the server log bounded across many starts of a long-lived
// data directory.
func rotateLog(path string) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 10<<20 {
		os.Rename(path, path+".1")
	}
}

func readTail(path string, from int64, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	f.Seek(from, io.SeekStart)
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return tail(string(b), lines)
}

func tail(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}

// superConn connects as the bootstrap superuser over the private socket.
func (s *Server) superConn(ctx context.Context, db string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cs := fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.sockDir, s.port, superuser, db)
	return pgx.Connect(cctx, cs)
}

// ensureRoleAndDB creates the application role and database, or resets the
// role's password to the configured one.
func (s *Server) ensureRoleAndDB(ctx context.Context) error {
	conn, err := s.superConn(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("connect to postgres as superuser: %w", err)
	}
	defer conn.Close(ctx)
	role := pgx.Identifier{s.o.User}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", s.o.User).Scan(&exists); err != nil {
		return fmt.Errorf("look up role %s: %w", s.o.User, err)
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("%s ROLE %s LOGIN PASSWORD %s", verb, role, quoteLiteral(s.o.Password))); err != nil {
		return fmt.Errorf("%s role %s: %w", strings.ToLower(verb), s.o.User, err)
	}
	if _, err := s.createDatabase(ctx, conn, s.o.Database); err != nil {
		return err
	}
	return nil
}

func (s *Server) createDatabase(ctx context.Context, conn *pgx.Conn, name string) (created bool, err error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return false, nil
	}
	q := fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{name}.Sanitize(), pgx.Identifier{s.o.User}.Sanitize())
	if _, err := conn.Exec(ctx, q); err != nil {
		return false, fmt.Errorf("create database %s: %w", name, err)
	}
	return true, nil
}

// CreateDatabase creates database name owned by the application role (if it
// does not exist) and returns its URL. Test harnesses use it to give every
// test a fresh database on one cluster.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := s.superConn(ctx, "postgres")
	if err != nil {
		return "", fmt.Errorf("connect to postgres as superuser: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := s.createDatabase(ctx, conn, name); err != nil {
		return "", err
	}
	return s.urlFor(name), nil
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// URL is the application's connection URL over TCP on loopback, password
// included: postgres://user:pass@127.0.0.1:port/db?sslmode=disable.
func (s *Server) URL() string { return s.urlFor(s.o.Database) }

func (s *Server) urlFor(db string) string {
	s.mu.Lock()
	port := s.port
	s.mu.Unlock()
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(s.o.User, s.o.Password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

func (s *Server) redactedURL() string {
	u, err := url.Parse(s.URL())
	if err != nil {
		return ""
	}
	return u.Redacted()
}

// Port is the TCP port the server listens on at 127.0.0.1.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// DataDir is the cluster's data directory.
func (s *Server) DataDir() string { return s.dataDir }

// Stop shuts the server down (fast shutdown: open transactions are rolled
// back, clients disconnected) and waits for it to exit. When ctx ends first
// it escalates to an immediate shutdown, then SIGKILL. The cluster can be
// started again with StartAgain; a stopped server's Stop does nothing.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return nil
	}
	s.signal(syscall.SIGINT)
	select {
	case <-s.exited:
		s.log.Info("postgres stopped", "port", s.port)
		return nil
	case <-ctx.Done():
	}
	s.log.Warn("postgres did not stop in time; immediate shutdown")
	s.kill()
	return fmt.Errorf("stop postgres: %w", ctx.Err())
}

// kill escalates SIGQUIT (immediate shutdown, children too) then SIGKILL;
// s.mu held.
func (s *Server) kill() {
	if !s.running() {
		return
	}
	s.signal(syscall.SIGQUIT)
	select {
	case <-s.exited:
		return
	case <-time.After(5 * time.Second):
	}
	// The whole process group: backends of a killed postmaster would
	// otherwise keep the shared memory and the port.
	killGroup(s.cmd.Process.Pid)
	<-s.exited
}

func (s *Server) signal(sig syscall.Signal) {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(sig)
	}
}

// Restart stops the server and starts it again on the same port.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(ctx); err != nil {
		return err
	}
	return s.StartAgain(ctx)
}

// Close stops the server (waiting up to 30 s) and removes its socket
// directory; the data directory is kept. Close is safe to call twice.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Stop(ctx)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	os.RemoveAll(s.sockDir)
	return err
}

// Supervise restarts the server whenever it exits on its own (a crash, an
// OOM kill, an operator's signal) until ctx is done or the server is
// closed, so that a consumer running its own database recovers without
// being restarted itself. A Stop made after ctx ends is not undone.
func (s *Server) Supervise(ctx context.Context) {
	delay := time.Second
	for {
		s.mu.Lock()
		exited, closed := s.exited, s.closed
		s.mu.Unlock()
		if closed || exited == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-exited:
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("postgres exited unexpectedly; restarting it", "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if err := s.StartAgain(ctx); err != nil {
			s.log.Error("restart postgres", "err", err)
			delay = min(2*delay, 30*time.Second)
			continue
		}
		s.log.Info("postgres restarted", "port", s.Port())
		delay = time.Second
	}
}
