package glusterfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/georep/georep/rpc/gfid"
)

// GlusterdInfo is where glusterd keeps this node's identity.
const GlusterdInfo = "/var/lib/glusterd/glusterd.info"

// LocalNodeUUID returns this node's glusterd UUID, the UUID= line of
// GlusterdInfo: the hostUuid of the bricks that are this node's.
func LocalNodeUUID() (string, error) {
	return ReadNodeUUID(GlusterdInfo)
}

// ReadNodeUUID returns the UUID= value of a glusterd.info file, in canonical
// lower-case form.
func ReadNodeUUID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("glusterd node uuid: %w", err)
	}
	return parseNodeUUID(b, path)
}

func parseNodeUUID(b []byte, name string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.TrimSpace(k) != "UUID" {
			continue
		}
		id, err := gfid.Parse(strings.TrimSpace(v))
		if err != nil {
			return "", fmt.Errorf("glusterd node uuid in %s: %w", name, err)
		}
		return id.String(), nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("glusterd node uuid in %s: %w", name, err)
	}
	return "", fmt.Errorf("glusterd node uuid: no UUID= line in %s", name)
}
