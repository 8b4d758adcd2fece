// Command weft-kube is one multi-call binary holding the Kubernetes control plane that Weft's
// tests and demos run against: kube-apiserver, kube-controller-manager and kubectl from the
// pinned k8s.io/kubernetes release, and etcd embedded from go.etcd.io/etcd/server/v3/embed.
// One link instead of four, and one shared compile.
//
// It dispatches on the name it was invoked by (a symlink named kubectl, kube-apiserver, ...)
// or, when invoked as weft-kube, on its first argument:
//
//	weft-kube kube-apiserver FLAGS...
//	weft-kube kube-controller-manager FLAGS...
//	weft-kube kubectl ARGS...
//	weft-kube etcd --data-dir D --listen-client-url http://127.0.0.1:P --listen-peer-url http://127.0.0.1:Q
//	weft-kube node --kubeconfig K [--node-name weft-node] [--node-ip 127.0.0.1]
//
// scripts/cluster.mjs builds it and starts the pieces.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

var commands = map[string]func(args []string) int{
	"kube-apiserver":          runAPIServer,
	"kube-controller-manager": runControllerManager,
	"kubectl":                 runKubectl,
	"etcd":                    runEtcd,
	"node":                    runNode,
}

func main() {
	name := strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe")
	args := os.Args[1:]
	if _, ok := commands[name]; !ok {
		if len(args) == 0 {
			usage()
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}
	run, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "weft-kube: unknown command %q\n", name)
		usage()
		os.Exit(2)
	}
	// The Kubernetes commands parse os.Args themselves (cobra, klog): present them the
	// arguments as their own binary would see them.
	os.Args = append([]string{name}, args...)
	os.Exit(run(args))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: weft-kube kube-apiserver|kube-controller-manager|kubectl|etcd|node [ARGS...]")
}

// parseFlags parses a subcommand's flags, requiring the flag named `required` and no positional
// arguments; on a bad command line it says why on stderr and returns false.
func parseFlags(fs *flag.FlagSet, args []string, required string) bool {
	if err := fs.Parse(args); err != nil {
		return false
	}
	if fs.Lookup(required).Value.String() == "" || fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: --%s is required and no positional arguments are accepted\n", fs.Name(), required)
		return false
	}
	return true
}
