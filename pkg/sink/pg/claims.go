package pg

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// EventClaimRefused is the events kind of a certificate refused a node
// that another certificate owns.
const EventClaimRefused = "node_claim_refused"

// ErrNodeOwned matches (errors.Is) the refusals of ClaimNode.
var ErrNodeOwned = errors.New("node belongs to another certificate")

// NodeOwnedError refuses a certificate a node that another one owns. Its
// text names the node but not the owner: it is sent to the refused peer.
type NodeOwnedError struct{ Node string }

func (e *NodeOwnedError) Error() string {
	return fmt.Sprintf("node %q belongs to another certificate", e.Node)
}

// Is makes errors.Is(err, ErrNodeOwned) true.
func (e *NodeOwnedError) Is(target error) bool { return target == ErrNodeOwned }

// claimEventEvery bounds the events rows of one refused certificate for one
// node: a refused producer reconnects with backoff, a hostile one may not,
// and either way one row a minute tells the operator everything.
const claimEventEvery = time.Minute

// ClaimNode binds node to cert, for certificates that name no node of
// their own: the first certificate to report a node owns it, and later
// claims succeed only for the same owner. The owner is the certificate's
// subject DN plus its issuer DN, so a certificate renewed under the same
// subject by the same CA keeps its nodes, while any other certificate of
// the CA, whatever its name, is refused.
//
// A node row that exists without an owner (created by OpenStream for a
// plain ws:// producer or a certificate bound to nodes by SAN, or by a
// version before owners were kept) is taken by the first claim.
//
// A refusal returns a *NodeOwnedError (errors.Is ErrNodeOwned) and writes
// an events row of kind node_claim_refused whose subject is the node and
// whose detail names the refused certificate (subject, serial, issuer) and
// the owner. Any other error is the database's, wrapped with the node.
// Claims from several consumers sharing the database are atomic: one
// INSERT ... ON CONFLICT decides.
func (s *Store) ClaimNode(ctx context.Context, node string, cert *x509.Certificate) error {
	if cert == nil {
		return fmt.Errorf("claim node %q: no certificate", node)
	}
	node = cleanKey(node)
	subject, issuer, serial := certOwner(cert)
	now := s.now()
	// The update's WHERE keeps an owner in place: for a node owned by
	// someone else nothing is updated and no row is returned.
	var claimed bool
	err := s.pool.QueryRow(ctx, `INSERT INTO node AS n (node, first_seen, last_seen, owner_subject, owner_issuer, owner_serial, claimed_at)
		VALUES ($1, $2, $2, $3, $4, $5, $2)
		ON CONFLICT (node) DO UPDATE SET owner_subject = EXCLUDED.owner_subject,
			owner_issuer = EXCLUDED.owner_issuer, owner_serial = EXCLUDED.owner_serial,
			claimed_at = coalesce(n.claimed_at, EXCLUDED.claimed_at)
		WHERE n.owner_subject IS NULL
			OR (n.owner_subject = EXCLUDED.owner_subject AND n.owner_issuer = EXCLUDED.owner_issuer)
		RETURNING true`, node, now, subject, issuer, serial).Scan(&claimed)
	if err == nil {
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("claim node %q: %w", node, err)
	}
	refused := &NodeOwnedError{Node: node}
	if !s.shouldRecordRefusal(node, subject, issuer, serial, now) {
		return refused
	}
	var ownerSubject, ownerIssuer string
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(owner_subject, ''), coalesce(owner_issuer, '') FROM node WHERE node = $1`, node).
		Scan(&ownerSubject, &ownerIssuer); err != nil {
		s.log.Warn("node claim refused; cannot read its owner", "node", node, "err", err)
	}
	detail := fmt.Sprintf("certificate %q (serial %s, issuer %q) refused: node owned by certificate %q (issuer %q)",
		subject, serial, issuer, ownerSubject, ownerIssuer)
	if err := s.recordEvent(ctx, node, now, EventClaimRefused, node, detail); err != nil {
		// The refusal stands; only its record is missing.
		s.log.Warn("node claim refused; cannot record it in events", "node", node, "err", err)
	}
	return refused
}

// certOwner renders the owner identity of cert as stored in node.
func certOwner(cert *x509.Certificate) (subject, issuer, serial string) {
	c := converter{}
	subject = c.str("", cert.Subject.String())
	issuer = c.str("", cert.Issuer.String())
	if cert.SerialNumber != nil {
		serial = cert.SerialNumber.Text(16)
	}
	return subject, issuer, serial
}

// shouldRecordRefusal reports whether this refusal gets an events row: at
// most one per node and certificate per claimEventEvery.
func (s *Store) shouldRecordRefusal(node, subject, issuer, serial string, now time.Time) bool {
	key := node + "\x00" + subject + "\x00" + issuer + "\x00" + serial
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if s.claimRefusals == nil {
		s.claimRefusals = map[string]time.Time{}
	}
	if last, ok := s.claimRefusals[key]; ok && now.Sub(last) < claimEventEvery && now.Sub(last) >= 0 {
		return false
	}
	if len(s.claimRefusals) > 1024 {
		for k, t := range s.claimRefusals {
			if now.Sub(t) >= claimEventEvery {
				delete(s.claimRefusals, k)
			}
		}
	}
	s.claimRefusals[key] = now
	return true
}

// recordEvent writes one events row outside any batch, creating the day's
// partition first if need be.
func (s *Store) recordEvent(ctx context.Context, node string, ts time.Time, kind, subject, detail string) error {
	if err := s.ensureDays(ctx, []dayNum{dayOf(ts)}); err != nil {
		return err
	}
	c := converter{}
	_, err := s.pool.Exec(ctx, `INSERT INTO events (node, ts, kind, subject, detail) VALUES ($1, $2, $3, $4, $5)`,
		node, ts, kind, c.str("", subject), c.str("", detail))
	if err != nil {
		return fmt.Errorf("insert %s event: %w", kind, err)
	}
	return nil
}
