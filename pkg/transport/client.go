package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/sysmon/sysmon/pkg/wire"
)

// Record is one encoded batch waiting in the outbox.
type Record struct {
	Seq     uint64
	Payload []byte // wire.Binary encoding of a *wire.Batch
}

// Outbox is the producer's queue of unacknowledged batches (the spool).
type Outbox interface {
	Pending(after uint64, max int) ([]Record, error)
	Ack(seq uint64) error
	Changed() <-chan struct{}
}

// ClientOptions configures a Client.
type ClientOptions struct {
	URLs         []string    // wss://host:port/ tried in turn
	TLS          *tls.Config // nil for ws://
	Hello        wire.Hello
	Outbox       Outbox
	Logger       *slog.Logger
	PingInterval time.Duration // keepalive; a peer silent for 3 of these is dropped [5s]
	Window       int           // batches sent ahead of acknowledgements [16]
	MinBackoff   time.Duration // [500ms]
	MaxBackoff   time.Duration // [30s]
	DialTimeout  time.Duration // [10s]
	// OfferJSON adds the sysmon.v1+json subprotocol after the binary one, so
	// consumers written against the JSON rendering can accept us.
	OfferJSON bool
}

// Client sends a producer's outbox to a consumer and survives everything the
// network does: it reconnects with jittered backoff, fails over between
// URLs, and resends whatever was not acknowledged.
type Client struct {
	o         ClientOptions
	log       *slog.Logger
	connected atomic.Bool
	acked     atomic.Uint64
	sent      atomic.Uint64
}

// NewClient returns a client; start it with Run.
func NewClient(o ClientOptions) *Client {
	if o.PingInterval == 0 {
		o.PingInterval = 5 * time.Second
	}
	if o.Window == 0 {
		o.Window = 16
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{o: o, log: o.Logger}
}

// Connected reports whether a session is up.
func (c *Client) Connected() bool { return c.connected.Load() }

// Acked is the highest sequence the consumer acknowledged.
func (c *Client) Acked() uint64 { return c.acked.Load() }

// Run connects and sends until ctx is done. On cancellation it gives the
// current session up to drain to send what it holds and collect
// acknowledgements, then closes it cleanly.
func (c *Client) Run(ctx context.Context, drain time.Duration) error {
	bo := backoff{Min: c.o.MinBackoff, Max: c.o.MaxBackoff}
	lastState := ""
	for i := 0; ; i++ {
		url := c.o.URLs[i%len(c.o.URLs)]
		start := time.Now()
		var wasUp bool
		err := c.session(ctx, url, drain, &wasUp)
		if ctx.Err() != nil {
			return nil
		}
		// A session that lived a while was healthy: start backing off anew.
		if time.Since(start) > time.Minute {
			bo.Reset()
		}
		msg := "cannot reach consumer; retrying"
		if wasUp {
			msg = "consumer session ended; reconnecting"
		}
		if state := errorClass(err); state != lastState || wasUp {
			c.log.Warn(msg, "url", url, "err", err)
			lastState = state
		} else {
			c.log.Debug(msg, "url", url, "err", err)
		}
		if !sleep(ctx.Done(), bo.Next()) {
			return nil
		}
	}
}

// errorClass groups errors so the log shows one line per change of state,
// not one per retry.
func errorClass(err error) string {
	if err == nil {
		return ""
	}
	if s := websocket.CloseStatus(err); s != -1 {
		return fmt.Sprint("close", s)
	}
	// The innermost cause ("connection refused", "tls: unknown certificate
	// authority") without the addresses and ports that vary per attempt.
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

func (c *Client) dial(ctx context.Context, url string) (*websocket.Conn, *http.Response, error) {
	dctx, cancel := context.WithTimeout(ctx, c.o.DialTimeout)
	defer cancel()
	protos := []string{wire.SubprotocolBinary}
	if c.o.OfferJSON {
		protos = append(protos, wire.SubprotocolJSON)
	}
	tr := &http.Transport{
		TLSClientConfig:     c.o.TLS,
		DialContext:         (&net.Dialer{Timeout: c.o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: c.o.DialTimeout,
		ForceAttemptHTTP2:   false,
	}
	conn, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: tr},
		Subprotocols:    protos,
		CompressionMode: websocket.CompressionContextTakeover,
	})
	return conn, resp, err
}

// session runs one connection; wasUp reports whether it got as far as the
// consumer's welcome.
func (c *Client) session(ctx context.Context, url string, drain time.Duration, wasUp *bool) error {
	conn, resp, err := c.dial(ctx, url)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial %s: %s: %w", url, resp.Status, err)
		}
		return fmt.Errorf("dial %s: %w", url, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20) // the consumer only sends welcome and acks
	codec, ok := wire.CodecFor(conn.Subprotocol())
	if !ok {
		conn.Close(wire.CloseProtocolError, "no subprotocol")
		return fmt.Errorf("consumer at %s negotiated no sysmon subprotocol", url)
	}

	// sctx ends the session; the caller's ctx ending starts a drain first.
	sctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	write := func(m wire.Message) error {
		buf, err := codec.Append(nil, m)
		if err != nil {
			return err
		}
		return c.writeRaw(sctx, conn, codec, buf)
	}
	if err := write(&c.o.Hello); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	welcome, err := c.readWelcome(sctx, conn, codec)
	if err != nil {
		return err
	}
	c.ack(welcome.LastSeq)
	*wasUp = true
	c.connected.Store(true)
	defer c.connected.Store(false)
	c.log.Info("connected to consumer", "url", url, "subprotocol", codec.Subprotocol(), "last_seq", welcome.LastSeq)

	ackc := make(chan uint64, 1)
	go func() { cancel(c.readAcks(sctx, conn, codec, ackc)) }()
	go c.keepalive(sctx, conn, cancel)

	sent := welcome.LastSeq
	acked := welcome.LastSeq
	var draining <-chan time.Time
	done := ctx.Done()
	for {
		// Fill the window.
		for sent-acked < uint64(c.o.Window) {
			recs, err := c.o.Outbox.Pending(sent, c.o.Window-int(sent-acked))
			if err != nil {
				return fmt.Errorf("read outbox: %w", err)
			}
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				payload := r.Payload
				if codec != wire.Binary {
					if payload, err = transcode(codec, r.Payload); err != nil {
						return fmt.Errorf("transcode batch %d: %w", r.Seq, err)
					}
				}
				if err := c.writeRaw(sctx, conn, codec, payload); err != nil {
					return fmt.Errorf("send batch %d: %w", r.Seq, err)
				}
				sent = r.Seq
				c.sent.Store(sent)
			}
		}
		if draining != nil && acked >= sent {
			conn.Close(websocket.StatusNormalClosure, "producer shutting down")
			return nil
		}
		select {
		case <-sctx.Done():
			return context.Cause(sctx)
		case a := <-ackc:
			acked = max(acked, a)
			if sent < acked { // the consumer had more than we sent this session
				sent = acked
			}
		case <-c.o.Outbox.Changed():
		case <-done:
			done = nil
			draining = time.After(drain)
			c.log.Info("draining: waiting for acknowledgements", "unacked", sent-acked)
		case <-draining:
			conn.Close(websocket.StatusGoingAway, "producer shutting down")
			return nil
		}
	}
}

func (c *Client) ack(seq uint64) {
	if seq == 0 {
		return
	}
	for {
		cur := c.acked.Load()
		if seq <= cur || c.acked.CompareAndSwap(cur, seq) {
			break
		}
	}
	if err := c.o.Outbox.Ack(seq); err != nil {
		c.log.Error("cannot drop acknowledged batches from the outbox", "seq", seq, "err", err)
	}
}

func transcode(codec wire.Codec, binary []byte) ([]byte, error) {
	m, err := wire.Binary.Decode(binary)
	if err != nil {
		return nil, err
	}
	return codec.Append(nil, m)
}

func (c *Client) writeRaw(ctx context.Context, conn *websocket.Conn, codec wire.Codec, buf []byte) error {
	wctx, cancel := context.WithTimeout(ctx, 3*c.o.PingInterval)
	defer cancel()
	typ := websocket.MessageBinary
	if codec == wire.JSON {
		typ = websocket.MessageText
	}
	return conn.Write(wctx, typ, buf)
}

func (c *Client) readWelcome(ctx context.Context, conn *websocket.Conn, codec wire.Codec) (*wire.Welcome, error) {
	rctx, cancel := context.WithTimeout(ctx, c.o.DialTimeout)
	defer cancel()
	for {
		_, data, err := conn.Read(rctx)
		if err != nil {
			return nil, fmt.Errorf("wait for welcome: %w", err)
		}
		m, err := codec.Decode(data)
		if errors.Is(err, wire.ErrUnknownType) {
			continue
		}
		if err != nil {
			conn.Close(wire.CloseProtocolError, "bad welcome")
			return nil, fmt.Errorf("decode welcome: %w", err)
		}
		w, ok := m.(*wire.Welcome)
		if !ok {
			conn.Close(wire.CloseProtocolError, "expected welcome")
			return nil, fmt.Errorf("consumer sent message type %d before welcome", wire.TypeOf(m))
		}
		return w, nil
	}
}

// readAcks keeps a reader running for the session's life (it also processes
// pongs and the close handshake) and applies acknowledgements.
func (c *Client) readAcks(ctx context.Context, conn *websocket.Conn, codec wire.Codec, ackc chan uint64) error {
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		m, err := codec.Decode(data)
		if errors.Is(err, wire.ErrUnknownType) {
			continue
		}
		if err != nil {
			conn.Close(wire.CloseProtocolError, "bad message")
			return fmt.Errorf("decode: %w", err)
		}
		a, ok := m.(*wire.Ack)
		if !ok {
			continue
		}
		c.ack(a.Seq)
		// Keep only the newest acknowledgement for the sender.
		select {
		case ackc <- a.Seq:
		default:
			select {
			case old := <-ackc:
				ackc <- max(old, a.Seq)
			default:
				ackc <- a.Seq
			}
		}
	}
}

// keepalive pings every interval; a ping unanswered for two more intervals
// means the connection is half-open, detected within three intervals.
func (c *Client) keepalive(ctx context.Context, conn *websocket.Conn, cancel context.CancelCauseFunc) {
	t := time.NewTicker(c.o.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, pcancel := context.WithTimeout(ctx, 2*c.o.PingInterval)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("keepalive: no pong within %v: %w", 2*c.o.PingInterval, err))
				conn.CloseNow()
				return
			}
		}
	}
}
