package transport

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/sysmon/sysmon/pkg/wire"
)

// Sink stores batches. WriteBatch returns nil only once the batch is durable;
// a batch whose sequence the stream already committed is skipped and
// reported as success, so replays are harmless. Calls for different streams
// may run concurrently.
type Sink interface {
	OpenStream(ctx context.Context, h *wire.Hello) (lastSeq uint64, err error)
	WriteBatch(ctx context.Context, h *wire.Hello, b *wire.Batch) error
}

// ErrUnavailable, wrapped by an Authorize error, means the decision could
// not be made now (the database is down): the session closes with 1011 and
// the producer retries, instead of being refused by policy.
var ErrUnavailable = errors.New("temporarily unavailable")

// PolicyError refuses a session for policy reasons (close code 1008).
type PolicyError struct{ Reason string }

func (e *PolicyError) Error() string { return e.Reason }

// ServerOptions configures a Server. Zero values take the defaults noted.
type ServerOptions struct {
	Sink Sink
	// Authorize decides whether the peer certificate (nil without TLS) may
	// report for hello.Node; an error closes the session with 1008.
	Authorize        func(ctx context.Context, peer *x509.Certificate, h *wire.Hello) error
	Logger           *slog.Logger
	HandshakeTimeout time.Duration // TLS + WebSocket upgrade + hello [10s]
	IdleTimeout      time.Duration // no message and no ping for this long closes [90s]
	MaxConns         int           // in total [4096]
	MaxConnsPerCert  int           // per client certificate [4]
	Window           int           // batches read ahead of the sink per session [16]
	Version          string
	// OnBatch, when set, observes each batch made durable (for metrics).
	OnBatch func(h *wire.Hello, b *wire.Batch, latency time.Duration)
}

// Server accepts producer sessions.
type Server struct {
	o        ServerOptions
	log      *slog.Logger
	mu       sync.Mutex
	sessions map[*session]struct{}
	perCert  map[[32]byte]int
	active   atomic.Int64
	handlers sync.WaitGroup
}

// NewServer returns a server; serve it with Serve or mount Handler.
func NewServer(o ServerOptions) *Server {
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.MaxConns == 0 {
		o.MaxConns = 4096
	}
	if o.MaxConnsPerCert == 0 {
		o.MaxConnsPerCert = 4
	}
	if o.Window == 0 {
		o.Window = 16
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o, log: o.Logger, sessions: map[*session]struct{}{}, perCert: map[[32]byte]int{}}
}

// Sessions is the number of open producer sessions.
func (s *Server) Sessions() int { return int(s.active.Load()) }

// Serve accepts connections on ln (wrapped in TLS when tlsConf is not nil)
// until ctx is done, then closes sessions and returns within a few seconds.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsConf *tls.Config) error {
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.o.HandshakeTimeout,
		IdleTimeout:       s.o.IdleTimeout,
		// Refused TLS handshakes (unknown CA, revoked, no certificate) land
		// here: an operator wants to see them, but not thousands a minute.
		ErrorLog:    log.New(newRateLog(s.log, 20, time.Minute), "", 0),
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnContext: func(c context.Context, nc net.Conn) context.Context {
			// A handshake that never completes must not hold a socket.
			nc.SetDeadline(time.Now().Add(s.o.HandshakeTimeout))
			return context.WithValue(c, connKey{}, nc)
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: closing producer sessions", "sessions", s.Sessions())
	s.CloseWhere(func(*x509.Certificate) bool { return true }, websocket.StatusGoingAway, "consumer shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	// Hijacked WebSocket handlers are not tracked by Shutdown: wait for them
	// (bounded) so the caller may close the sink afterwards.
	waited := make(chan struct{})
	go func() { s.handlers.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-sctx.Done():
		s.log.Warn("sessions still closing at shutdown deadline")
	}
	return nil
}

type connKey struct{}

// CloseWhere closes every session whose peer certificate matches, e.g. one
// that was just revoked, and returns how many it closed.
func (s *Server) CloseWhere(match func(peer *x509.Certificate) bool, code websocket.StatusCode, reason string) int {
	s.mu.Lock()
	var victims []*session
	for se := range s.sessions {
		if match(se.peer) {
			victims = append(victims, se)
		}
	}
	s.mu.Unlock()
	for _, se := range victims {
		go se.close(code, reason)
	}
	return len(victims)
}

// ServeHTTP upgrades one producer connection and runs its session.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handlers.Add(1)
	defer s.handlers.Done()
	var peer *x509.Certificate
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		peer = r.TLS.PeerCertificates[0]
	}
	remote := r.RemoteAddr
	log := s.log.With("peer", remote)
	if peer != nil {
		log = log.With("cert", peer.Subject.CommonName, "serial", peer.SerialNumber.Text(16))
	}
	release, err := s.admit(peer)
	if err != nil {
		log.Warn("refusing connection", "err", err)
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer release()

	var lastActive atomic.Int64
	touch := func() { lastActive.Store(time.Now().UnixNano()) }
	touch()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:    []string{wire.SubprotocolBinary, wire.SubprotocolJSON},
		CompressionMode: websocket.CompressionContextTakeover,
		// Producers are not browsers; the Origin check protects browsers.
		InsecureSkipVerify: true,
		OnPingReceived:     func(context.Context, []byte) bool { touch(); return true },
	})
	if err != nil {
		log.Info("websocket upgrade failed", "err", err)
		return
	}
	defer c.CloseNow()
	if nc, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		nc.SetDeadline(time.Time{}) // the idle watchdog takes over from here
	}
	codec, ok := wire.CodecFor(c.Subprotocol())
	if !ok {
		log.Info("no common subprotocol", "offered", r.Header.Get("Sec-WebSocket-Protocol"))
		c.Close(wire.CloseProtocolError, "subprotocol sysmon.v1 or sysmon.v1+json required")
		return
	}
	// Frames over the limit make Read fail and close with 1009.
	c.SetReadLimit(wire.MaxMessageBytes)

	// The session outlives the server's context: shutdown goes through
	// CloseWhere, so producers get a close frame (1001), not a dropped
	// connection.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	se := &session{srv: s, conn: c, peer: peer, codec: codec, log: log, cancel: cancel, touch: touch}
	s.track(se, true)
	defer s.track(se, false)

	go func() { // idle watchdog: half-open TCP, stalled peers, slow-loris
		t := time.NewTicker(min(s.o.IdleTimeout/4, 5*time.Second))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if time.Since(time.Unix(0, lastActive.Load())) > s.o.IdleTimeout {
					log.Info("closing idle session", "idle", s.o.IdleTimeout)
					go se.close(websocket.StatusPolicyViolation, "idle timeout")
					return
				}
			}
		}
	}()
	se.run(ctx)
}

func (s *Server) admit(peer *x509.Certificate) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(s.active.Load()) >= s.o.MaxConns {
		return nil, errors.New("too many connections")
	}
	var fp [32]byte
	if peer != nil {
		fp = sha256.Sum256(peer.Raw)
		if s.perCert[fp] >= s.o.MaxConnsPerCert {
			return nil, fmt.Errorf("too many connections for this certificate (max %d)", s.o.MaxConnsPerCert)
		}
		s.perCert[fp]++
	}
	s.active.Add(1)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.active.Add(-1)
		if peer != nil {
			if s.perCert[fp]--; s.perCert[fp] <= 0 {
				delete(s.perCert, fp)
			}
		}
	}, nil
}

func (s *Server) track(se *session, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.sessions[se] = struct{}{}
	} else {
		delete(s.sessions, se)
	}
}

type session struct {
	srv    *Server
	conn   *websocket.Conn
	peer   *x509.Certificate
	codec  wire.Codec
	log    *slog.Logger
	cancel context.CancelFunc
	touch  func()
	once   sync.Once
}

func (se *session) close(code websocket.StatusCode, reason string) {
	// Once makes concurrent callers (a revocation sweep and the session's
	// own failing read) wait until the close handshake is done, so the
	// handler's deferred CloseNow cannot cut the close frame off.
	se.once.Do(func() {
		se.conn.Close(code, reason) // bounded: waits at most 5s for the peer
		se.cancel()
	})
}

type received struct {
	b  *wire.Batch
	at time.Time
}

func (se *session) run(ctx context.Context) {
	hello, err := se.readHello(ctx)
	if err != nil {
		se.fail(err)
		return
	}
	se.log = se.log.With("node", hello.Node)
	if a := se.srv.o.Authorize; a != nil {
		if err := a(ctx, se.peer, hello); err != nil {
			if errors.Is(err, ErrUnavailable) {
				se.log.Warn("cannot authorize producer now", "err", err)
				se.close(wire.CloseInternalError, "try again later")
				return
			}
			se.fail(&PolicyError{Reason: err.Error()})
			return
		}
	}
	var last uint64
	bo := backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}
	for {
		last, err = se.srv.o.Sink.OpenStream(ctx, hello)
		if err == nil {
			break
		}
		se.log.Warn("cannot open stream; retrying", "err", err)
		if !sleep(ctx.Done(), bo.Next()) {
			return
		}
	}
	if err := se.send(ctx, &wire.Welcome{ConsumerVersion: se.srv.o.Version, LastSeq: last}); err != nil {
		se.log.Info("session ended", "err", err)
		return
	}
	se.log.Info("producer connected", "spool", hello.SpoolID, "last_seq", last, "subprotocol", se.codec.Subprotocol())

	// The reader never blocks on the sink: producers keep at most Window
	// batches unacknowledged, and the queue holds that many, so pings keep
	// being answered while the database is slow or down.
	queue := make(chan received, se.srv.o.Window+1)
	readErr := make(chan error, 1)
	go func() { readErr <- se.readLoop(ctx, queue) }()

	for {
		select {
		case err := <-readErr:
			se.fail(err)
			return
		case r := <-queue:
			if err := se.store(ctx, hello, r); err != nil {
				return
			}
			if err := se.send(ctx, &wire.Ack{Seq: r.b.Seq}); err != nil {
				se.log.Info("session ended", "err", err)
				return
			}
		}
	}
}

// store writes one batch, retrying while the sink fails: the batch stays
// unacknowledged in the producer's spool meanwhile, so nothing is lost.
func (se *session) store(ctx context.Context, h *wire.Hello, r received) error {
	bo := backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}
	failing := false
	for {
		err := se.srv.o.Sink.WriteBatch(ctx, h, r.b)
		if err == nil {
			if failing {
				se.log.Info("sink recovered", "seq", r.b.Seq)
			}
			if f := se.srv.o.OnBatch; f != nil {
				f(h, r.b, time.Since(r.at))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !failing {
			se.log.Warn("cannot store batch; holding acknowledgements and retrying", "seq", r.b.Seq, "err", err)
			failing = true
		}
		if !sleep(ctx.Done(), bo.Next()) {
			return ctx.Err()
		}
	}
}

func (se *session) readHello(ctx context.Context) (*wire.Hello, error) {
	hctx, cancel := context.WithTimeout(ctx, se.srv.o.HandshakeTimeout)
	defer cancel()
	for {
		m, err := se.read(hctx)
		if err != nil {
			return nil, err
		}
		if m == nil {
			continue // unknown type: skipped
		}
		h, ok := m.(*wire.Hello)
		if !ok {
			return nil, protocolErr("first message must be hello, got type %d", wire.TypeOf(m))
		}
		return h, nil
	}
}

func (se *session) readLoop(ctx context.Context, queue chan<- received) error {
	var lastSeq uint64
	for {
		m, err := se.read(ctx)
		if err != nil {
			return err
		}
		b, ok := m.(*wire.Batch)
		if m == nil {
			continue
		}
		if !ok {
			return protocolErr("unexpected message type %d", wire.TypeOf(m))
		}
		if b.Seq <= lastSeq {
			return protocolErr("batch seq %d not after %d", b.Seq, lastSeq)
		}
		lastSeq = b.Seq
		select {
		case queue <- received{b: b, at: time.Now()}:
		default:
			return &PolicyError{Reason: fmt.Sprintf("more than %d unacknowledged batches", se.srv.o.Window)}
		}
	}
}

type protoError struct{ msg string }

func (e *protoError) Error() string { return e.msg }

func protocolErr(format string, args ...any) error {
	return &protoError{msg: fmt.Sprintf(format, args...)}
}

// read returns the next message, nil for a message of an unknown type
// (skipped, as SPEC.md says), or an error that ends the session.
func (se *session) read(ctx context.Context) (wire.Message, error) {
	_, data, err := se.conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	se.touch()
	m, err := se.codec.Decode(data)
	if errors.Is(err, wire.ErrUnknownType) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (se *session) send(ctx context.Context, m wire.Message) error {
	buf, err := se.codec.Append(nil, m)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	typ := websocket.MessageBinary
	if se.codec == wire.JSON {
		typ = websocket.MessageText
	}
	return se.conn.Write(wctx, typ, buf)
}

// fail closes the session with the close code that fits err and logs it.
func (se *session) fail(err error) {
	var pe *PolicyError
	var proto *protoError
	switch {
	case errors.As(err, &pe):
		se.log.Warn("refusing producer", "reason", pe.Reason)
		se.close(wire.ClosePolicyViolation, truncate(pe.Reason))
	case errors.Is(err, wire.ErrTooBig), errors.Is(err, websocket.ErrMessageTooBig):
		se.log.Warn("closing session: message over limit", "err", err)
		se.close(wire.CloseMessageTooBig, "message over limit")
	case errors.As(err, &proto), errors.Is(err, wire.ErrMalformed):
		se.log.Warn("closing session: protocol error", "err", err)
		se.close(wire.CloseProtocolError, truncate(err.Error()))
	case websocket.CloseStatus(err) != -1:
		se.log.Info("session closed", "code", websocket.CloseStatus(err))
	case errors.Is(err, context.Canceled):
	default:
		se.log.Info("session ended", "err", err)
		se.close(wire.CloseProtocolError, "read error")
	}
}

// truncate keeps a close reason within the 123 bytes a close frame allows.
func truncate(s string) string {
	if len(s) > 120 {
		return s[:120]
	}
	return s
}
