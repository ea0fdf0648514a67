package main

// Where the yardstick's time goes, per step, for a body file: LANES_BENCH_BODY=large.json go test -bench . -run x
// (bench/bodies.py writes the files: python -m bench.bodies DIR). Skipped without LANES_BENCH_BODY.

import (
	"encoding/json"
	"os"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func loadReview(b *testing.B) admission.Request {
	path := os.Getenv("LANES_BENCH_BODY")
	if path == "" {
		b.Skip("set LANES_BENCH_BODY to an AdmissionReview file")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &review); err != nil {
		b.Fatal(err)
	}
	return admission.Request{AdmissionRequest: *review.Request}
}

func BenchmarkSteps(b *testing.B) {
	req := loadReview(b)
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	decoder := admission.NewDecoder(scheme)
	pod := &corev1.Pod{}
	_ = decoder.Decode(req, pod)
	cfg, _ := resolve(pod)
	var warnings []string
	mutated := pod.DeepCopy()
	mutate(mutated, cfg, &warnings)
	marshaled, _ := json.Marshal(mutated)

	b.Run("decode", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p := &corev1.Pod{}
			_ = decoder.Decode(req, p)
		}
	})
	b.Run("mutate", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p := pod.DeepCopy()
			c, _ := resolve(p)
			var w []string
			mutate(p, c, &w)
		}
	})
	b.Run("marshal", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_, _ = json.Marshal(mutated)
		}
	})
	b.Run("createpatch", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_, _ = jsonpatch.CreatePatch(req.Object.Raw, marshaled)
		}
	})
	b.Run("handle", func(b *testing.B) {
		m := &podMutator{decoder: decoder}
		for i := 0; i < b.N; i++ {
			_ = m.Handle(b.Context(), req)
		}
	})
}
