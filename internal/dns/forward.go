package dns

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// forwarder sends queries outside the zone to the upstreams in order, over
// UDP with a retry over TCP on truncation (TCP only for TCP clients).
type forwarder struct {
	upstreams []string
	udp, tcp  *dns.Client
}

func newForwarder(upstreams []string, timeout time.Duration) *forwarder {
	return &forwarder{
		upstreams: upstreams,
		udp:       &dns.Client{Net: "udp", Timeout: timeout, UDPSize: dns.DefaultMsgSize},
		tcp:       &dns.Client{Net: "tcp", Timeout: timeout},
	}
}

func (f *forwarder) exchange(ctx context.Context, req *dns.Msg, tcp bool) (*dns.Msg, error) {
	var lastErr error = errNoUpstream
	for _, up := range f.upstreams {
		c := f.udp
		if tcp {
			c = f.tcp
		}
		r, _, err := c.ExchangeContext(ctx, req, up)
		if err == nil && r.Truncated && !tcp {
			r, _, err = f.tcp.ExchangeContext(ctx, req, up)
		}
		if err != nil {
			lastErr = fmt.Errorf("%s: %w", up, err)
			continue
		}
		if r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
			lastErr = fmt.Errorf("%s: %s", up, dns.RcodeToString[r.Rcode])
			continue
		}
		return r, nil
	}
	return nil, lastErr
}
