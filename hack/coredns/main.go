// Command coredns is the cluster DNS of the real test node (devtools/realnode/coredns.py): CoreDNS built with only
// the plugins a kubeadm Corefile uses, the "custom build" CoreDNS documents (coremain plus the plugin packages you
// import, and dnsserver.Directives listing them in execution order). The stock build links every plugin, with the
// cloud SDKs of route53, azure and clouddns; this one links the ten below.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives keeps the order of CoreDNS's plugin.cfg (core/dnsserver/zdirectives.go at the pinned version): a
// plugin sees a query before every plugin listed after it, whatever order the Corefile names them in.
var directives = []string{
	"reload",
	"ready",
	"health",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"kubernetes",
	"loop",
	"forward",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
