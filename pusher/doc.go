// Package pusher moves images between OCI registries, archives and the
// per-user store: pull, push, login/logout, save and load.
//
// It speaks the distribution protocol through go-containerregistry
// (reference parsing, authentication and token exchange, error decoding)
// and streams layers straight between the network and the store:
//
//   - a pulled layer is decompressed once (gzip or zstd) while its blob
//     digest and its diff ID are computed; a mismatch fails the layer
//     before the store commits it, so nothing partial is stored or tagged;
//   - a pushed layer is compressed once (parallel gzip or zstd) while it is
//     uploaded, and its compressed digest is cached with the layer so that
//     a later push of the same layer compresses nothing;
//   - blobs the registry already has are skipped, and blobs in another
//     repository of the same registry are mounted.
//
// Registry configuration (unqualified-search registries, mirrors, insecure
// registries) comes from registries.conf in the user's configuration
// directory; see docs/registries.md. The package never writes to
// os.Stdout: progress goes to Options.Progress.
package pusher
