// lanes-loadgen: an open-loop (fixed request rate) HTTP/1.1 load generator, in the spirit of wrk2.
//
// Debian's wrk has no fixed-rate mode (-R is wrk2's), and a closed-loop tool under-reports latency when the
// server stalls (coordinated omission: a stalled connection simply stops sending). This tool schedules request i
// at start + i/rate, independent of the responses, and measures each latency from that *intended* send time, so
// a stall shows up in every request that should have been sent during it. Requests are carried over at most
// -connections keep-alive connections (TLS when the URL is https); when all are busy, due requests queue and
// their queueing time counts.
//
// Output: a JSON summary on stdout (or -out FILE); optionally one CSV line per request (-records FILE):
// intended unix time, corrected latency ms, service latency ms, status, error class, value of -record-header.
//
// Standard library only, so it builds in seconds and is cached by bench/common.py.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

type record struct {
	intended time.Time
	latency  time.Duration // from intended send time (coordinated-omission corrected)
	service  time.Duration // from actual send time
	status   int
	errClass string
	header   string
}

type summary struct {
	URL              string             `json:"url"`
	Rate             float64            `json:"rate"`
	DurationS        float64            `json:"duration_s"`
	Connections      int                `json:"connections"`
	WarmupRequests   int                `json:"warmup_requests"`
	Scheduled        int                `json:"scheduled"`
	Completed        int                `json:"completed"`
	OK               int                `json:"ok"`
	Errors           int                `json:"errors"`
	NotSent          int                `json:"not_sent"`
	ErrorClasses     map[string]int     `json:"error_classes"`
	Statuses         map[string]int     `json:"statuses"`
	AchievedRate     float64            `json:"achieved_rate"`
	LatencyMs        map[string]float64 `json:"latency_ms"`
	ServiceLatencyMs map[string]float64 `json:"service_latency_ms"`
	MaxDispatchLagMs float64            `json:"max_dispatch_lag_ms"`
}

func classify(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "conn_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "conn_reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken_pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return "timeout"
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		return "conn_refused"
	case strings.Contains(msg, "connection reset"):
		return "conn_reset"
	case strings.Contains(msg, "EOF"):
		return "eof"
	case strings.Contains(msg, "timeout"), strings.Contains(msg, "deadline"):
		return "timeout"
	}
	return "other"
}

func pct(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := q / 100 * float64(len(sorted)-1)
	lo := int(rank)
	hi := lo + 1
	if hi >= len(sorted) {
		hi = len(sorted) - 1
	}
	return sorted[lo] + (sorted[hi]-sorted[lo])*(rank-float64(lo))
}

func stats(values []float64) map[string]float64 {
	out := map[string]float64{}
	if len(values) == 0 {
		return out
	}
	sort.Float64s(values)
	sum := 0.0
	for _, v := range values {
		sum += v
	}
	out["mean"] = sum / float64(len(values))
	out["p50"] = pct(values, 50)
	out["p90"] = pct(values, 90)
	out["p99"] = pct(values, 99)
	out["p999"] = pct(values, 99.9)
	out["max"] = values[len(values)-1]
	return out
}

func main() {
	var headers headerList
	url := flag.String("url", "", "target URL (http or https)")
	method := flag.String("method", "GET", "HTTP method")
	bodyFile := flag.String("body", "", "file whose content is the request body")
	rate := flag.Float64("rate", 100, "requests per second (fixed schedule)")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	warmup := flag.Duration("warmup", 0, "send at the same rate this long first, not recorded")
	conns := flag.Int("connections", 16, "maximum concurrent keep-alive connections")
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout")
	grace := flag.Duration("grace", 3*time.Second, "after the last scheduled send, wait this long for answers")
	insecure := flag.Bool("insecure", false, "do not verify the server certificate")
	caFile := flag.String("cacert", "", "CA bundle to verify the server certificate")
	certFile := flag.String("cert", "", "client certificate (PEM)")
	keyFile := flag.String("key", "", "client key (PEM)")
	out := flag.String("out", "", "write the JSON summary here instead of stdout")
	recordsFile := flag.String("records", "", "write one CSV line per request here")
	recordHeader := flag.String("record-header", "", "response header to record per request")
	expect := flag.Int("expect-status", 200, "status that counts as OK")
	flag.Var(&headers, "header", "request header 'Name: value' (repeatable)")
	flag.Parse()
	if *url == "" || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "lanes-loadgen: -url and a positive -rate are required")
		os.Exit(2)
	}
	var body []byte
	if *bodyFile != "" {
		var err error
		if body, err = os.ReadFile(*bodyFile); err != nil {
			fmt.Fprintln(os.Stderr, "lanes-loadgen:", err)
			os.Exit(2)
		}
	}
	tlsConfig := &tls.Config{InsecureSkipVerify: *insecure} //nolint:gosec // benchmark against loopback
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lanes-loadgen:", err)
			os.Exit(2)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tlsConfig.RootCAs = pool
	}
	if *certFile != "" {
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lanes-loadgen:", err)
			os.Exit(2)
		}
		tlsConfig.Certificates = []tls.Certificate{pair}
	}
	transport := &http.Transport{
		TLSClientConfig:     tlsConfig,
		MaxIdleConns:        *conns,
		MaxIdleConnsPerHost: *conns,
		MaxConnsPerHost:     *conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
	}
	client := &http.Client{Transport: transport, Timeout: *timeout}
	parsedHeaders := http.Header{}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if ok {
			parsedHeaders.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
	}

	interval := time.Duration(float64(time.Second) / *rate)
	total := int(float64(*duration+*warmup) / float64(interval))
	warmupCount := int(float64(*warmup) / float64(interval))
	jobs := make(chan int, total+1)
	results := make([]record, total)
	start := time.Now().Add(50 * time.Millisecond)
	sendDeadline := start.Add(*duration + *warmup + *grace)
	var wg sync.WaitGroup
	var mu sync.Mutex
	maxLag := time.Duration(0)

	worker := func() {
		defer wg.Done()
		for i := range jobs {
			intended := start.Add(time.Duration(i) * interval)
			rec := record{intended: intended}
			if time.Now().After(sendDeadline) {
				rec.errClass = "not_sent"
				results[i] = rec
				continue
			}
			req, _ := http.NewRequest(*method, *url, bytes.NewReader(body))
			for name, values := range parsedHeaders {
				req.Header[name] = values
			}
			if len(body) > 0 {
				req.ContentLength = int64(len(body))
			}
			sent := time.Now()
			resp, err := client.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				rec.status = resp.StatusCode
				if *recordHeader != "" {
					rec.header = resp.Header.Get(*recordHeader)
				}
				if err == nil && resp.StatusCode != *expect {
					rec.errClass = fmt.Sprintf("status_%d", resp.StatusCode)
				}
			}
			done := time.Now()
			if err != nil {
				rec.errClass = classify(err)
			}
			rec.latency = done.Sub(intended)
			rec.service = done.Sub(sent)
			results[i] = rec
		}
	}
	for w := 0; w < *conns; w++ {
		wg.Add(1)
		go worker()
	}
	// SIGTERM/SIGINT: stop scheduling, let requests in flight finish, report what was sent so far.
	var stopped atomic.Bool
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		stopped.Store(true)
	}()
	dispatched := 0
	for i := 0; i < total && !stopped.Load(); i++ {
		intended := start.Add(time.Duration(i) * interval)
		if wait := time.Until(intended); wait > 0 {
			time.Sleep(wait)
		}
		lag := time.Since(intended)
		mu.Lock()
		if i >= warmupCount && lag > maxLag {
			maxLag = lag
		}
		mu.Unlock()
		jobs <- i
		dispatched = i + 1
	}
	close(jobs)
	wg.Wait()

	s := summary{
		URL: *url, Rate: *rate, DurationS: float64(dispatched-warmupCount) / *rate, Connections: *conns,
		ErrorClasses: map[string]int{}, Statuses: map[string]int{},
		MaxDispatchLagMs: float64(maxLag.Microseconds()) / 1000, WarmupRequests: warmupCount,
	}
	var lat, svc []float64
	var first, last time.Time
	for i := warmupCount; i < dispatched; i++ {
		rec := results[i]
		s.Scheduled++
		if rec.errClass == "not_sent" {
			s.NotSent++
			s.ErrorClasses["not_sent"]++
			continue
		}
		s.Completed++
		if rec.status != 0 {
			s.Statuses[fmt.Sprint(rec.status)]++
		}
		if rec.errClass != "" {
			s.Errors++
			s.ErrorClasses[rec.errClass]++
			continue
		}
		s.OK++
		finished := rec.intended.Add(rec.latency)
		if first.IsZero() || rec.intended.Before(first) {
			first = rec.intended
		}
		if finished.After(last) {
			last = finished
		}
		lat = append(lat, float64(rec.latency.Microseconds())/1000)
		svc = append(svc, float64(rec.service.Microseconds())/1000)
	}
	if !last.IsZero() && last.After(first) {
		s.AchievedRate = float64(s.OK) / last.Sub(first).Seconds()
	}
	s.LatencyMs = stats(lat)
	s.ServiceLatencyMs = stats(svc)

	if *recordsFile != "" {
		f, err := os.Create(*recordsFile)
		if err == nil {
			w := bufio.NewWriter(f)
			fmt.Fprintln(w, "intended_unix,latency_ms,service_ms,status,error,header")
			for i := warmupCount; i < dispatched; i++ {
				rec := results[i]
				fmt.Fprintf(w, "%.6f,%.3f,%.3f,%d,%s,%s\n", float64(rec.intended.UnixNano())/1e9,
					float64(rec.latency.Microseconds())/1000, float64(rec.service.Microseconds())/1000,
					rec.status, rec.errClass, strings.ReplaceAll(rec.header, ",", ";"))
			}
			w.Flush()
			f.Close()
		}
	}
	encoded, _ := json.MarshalIndent(s, "", "  ")
	if *out != "" {
		if err := os.WriteFile(*out, append(encoded, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "lanes-loadgen:", err)
			os.Exit(1)
		}
		return
	}
	os.Stdout.Write(append(encoded, '\n'))
}
