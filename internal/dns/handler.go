package dns

import (
	"context"
	"strings"

	"github.com/miekg/dns"
)

// ServeDNS answers one query: from the table for the cluster zone and for
// reverse names it knows, by forwarding otherwise.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	tcp := isTCP(w)
	m := s.answer(req, tcp)
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = int(max(opt.UDPSize(), dns.MinMsgSize))
		if m.IsEdns0() == nil {
			m.SetEdns0(uint16(size), false)
		}
	}
	if !tcp {
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(interface{ Network() string })
	return ok && w.RemoteAddr().Network() == "tcp"
}

func (s *Server) answer(req *dns.Msg, tcp bool) *dns.Msg {
	m := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery {
		return m.SetRcode(req, dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return m.SetRcode(req, dns.RcodeFormatError)
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	inZone := dns.IsSubDomain(s.z.zone, name)
	if !inZone && !isReverse(name) {
		return s.forward(req, tcp)
	}
	n, found := s.table.lookup(name)
	if !found && inZone {
		n, found = s.podRecords(name)
	}
	if !found {
		if !inZone {
			return s.forward(req, tcp) // a reverse name of no cluster IP
		}
		m.SetRcode(req, dns.RcodeNameError)
		m.Authoritative, m.RecursionAvailable = true, true
		m.Ns = []dns.RR{s.z.soa()}
		return m
	}
	m.SetReply(req)
	m.Authoritative, m.RecursionAvailable = true, true
	if cname := n[dns.TypeCNAME]; len(cname) > 0 && q.Qtype != dns.TypeCNAME {
		if q.Name != name {
			cname = withOwner(cname, q.Name)
		}
		m.Answer = append(m.Answer, cname...)
		m.Answer = append(m.Answer, s.chase(cname[0].(*dns.CNAME).Target, q.Qtype, tcp)...)
		return m
	}
	if q.Qtype == dns.TypeANY {
		for _, rrs := range n {
			m.Answer = append(m.Answer, rrs...)
		}
	} else {
		m.Answer = n[q.Qtype]
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{s.z.soa()} // NODATA: the name exists
		return m
	}
	if q.Name != name {
		m.Answer = withOwner(m.Answer, q.Name)
	}
	if q.Qtype == dns.TypeSRV {
		for _, rr := range m.Answer {
			if t, ok := s.table.lookup(rr.(*dns.SRV).Target); ok {
				m.Extra = append(m.Extra, t[dns.TypeA]...)
				m.Extra = append(m.Extra, t[dns.TypeAAAA]...)
			}
		}
	}
	return m
}

// withOwner copies rrs under the query's spelling of their name: resolvers
// that randomise the case of queries (DNS 0x20) expect it echoed.
func withOwner(rrs []dns.RR, name string) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
		out[i].Header().Name = name
	}
	return out
}

// chase resolves an ExternalName target: from the table when it is in the
// zone, from the upstreams otherwise; failures leave just the CNAME.
func (s *Server) chase(target string, qtype uint16, tcp bool) []dns.RR {
	if qtype != dns.TypeA && qtype != dns.TypeAAAA {
		return nil
	}
	if dns.IsSubDomain(s.z.zone, target) {
		if n, ok := s.table.lookup(target); ok {
			return n[qtype]
		}
		return nil
	}
	q := new(dns.Msg).SetQuestion(target, qtype)
	r, err := s.fwd.exchange(context.Background(), q, tcp)
	if err != nil || r.Rcode != dns.RcodeSuccess {
		return nil
	}
	return r.Answer
}

// podRecords answers `<a-b-c-d>.<ns>.pod.<zone>` from the name alone, and
// makes `<ns>.pod.<zone>` exist; anything else under pod is NXDOMAIN.
func (s *Server) podRecords(name string) (rrsByType, bool) {
	rest, ok := strings.CutSuffix(name, ".pod."+s.z.zone)
	if !ok || rest == "" {
		return nil, false
	}
	labels := strings.Split(rest, ".")
	switch len(labels) {
	case 1:
		return rrsByType{}, true
	case 2:
		ip := podIP(labels[0])
		if ip == nil {
			return nil, false
		}
		rr := s.z.addrRR(name, ip)
		return rrsByType{rr.Header().Rrtype: {rr}}, true
	}
	return nil, false
}

func isReverse(name string) bool {
	return strings.HasSuffix(name, ".in-addr.arpa.") || strings.HasSuffix(name, ".ip6.arpa.")
}

func (s *Server) forward(req *dns.Msg, tcp bool) *dns.Msg {
	r, err := s.fwd.exchange(context.Background(), req, tcp)
	if err != nil {
		s.cfg.Logger.Debug("dns: forward", "name", req.Question[0].Name, "err", err)
		m := new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
		m.RecursionAvailable = true
		return m
	}
	r.Id = req.Id
	return r
}
