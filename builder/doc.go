// Package builder turns a Dockerfile and a build context into an image in
// the store, with docker's semantics.
//
// The work is split in three, so that each part can be tested alone:
//
//   - Parse reads the Dockerfile with buildkit's parser and instructions
//     packages. Nothing is expanded there.
//   - Plan is pure: given the parsed file, the build arguments, the target
//     and the configurations of the base images, it expands ARG and ENV as
//     docker does (meta ARGs before FROM, build-arg overrides, the
//     predefined TARGETPLATFORM family, heredoc bodies without quote
//     processing), decides which stages are needed, and gives every step
//     the part of its cache key that does not depend on file contents.
//     Golden files in testdata/ pin its output.
//   - Build executes a plan: each step that makes a layer gets its full
//     cache key (plan key plus the digests of the files it reads); a key
//     found in the cache index reuses the stored layer without mounting
//     anything; otherwise an Executor makes the layer (Copy writes a tar
//     diff, Run runs a process in the mounted rootfs) and the index records
//     it. The image is committed with docker-compatible history.
//
// Non-goals: other platforms than the host's (a clear error), remote git
// contexts, and the SSH mount type.
package builder
