package netpol

import (
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
)

func TestConfigValidate(t *testing.T) {
	cs := fake.NewClientset()
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
		table   string
	}{
		{name: "defaults", cfg: Config{Client: cs, NodeName: "n1"}, table: DefaultTable},
		{name: "own table", cfg: Config{Client: cs, NodeName: "n1", Table: "skf-x"}, table: "skf-x"},
		{name: "no client", cfg: Config{NodeName: "n1"}, wantErr: "client is required"},
		{name: "no node", cfg: Config{Client: cs}, wantErr: "--node-name"},
		{name: "bad table", cfg: Config{Client: cs, NodeName: "n1", Table: "a b"}, wantErr: `--netpol-table "a b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || tc.cfg.Table != tc.table {
				t.Fatalf("err %v, table %q", err, tc.cfg.Table)
			}
		})
	}
}
