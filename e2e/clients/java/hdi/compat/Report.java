// The suite's shared plumbing: client properties, a checker that collects failures, and the one
// JSON result line each program ends with (`{"ok": true, ...}` and exit code 0, or `"ok": false`
// with the failures and exit code 1), which `e2e/src/java.rs` reads.
package hdi.compat;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.function.BooleanSupplier;

final class Report {
  private final List<String> failures = new ArrayList<>();
  private final Map<String, Object> facts = new LinkedHashMap<>();

  /** Records a failure unless `condition` holds. */
  synchronized void check(boolean condition, String what) {
    if (!condition) {
      failures.add(what);
      System.out.println("FAILED: " + what);
    }
  }

  /** Records a failure unless `expected` equals `actual`. */
  void equal(Object expected, Object actual, String what) {
    check(java.util.Objects.equals(expected, actual), what + ": expected " + expected + ", got " + actual);
  }

  /** A fact for the result line. */
  synchronized void fact(String key, Object value) {
    facts.put(key, value);
  }

  boolean ok() {
    return failures.isEmpty();
  }

  /** Prints the result line and exits with 0 when nothing failed, else 1. */
  void finish() {
    StringBuilder out = new StringBuilder("{\"ok\": ").append(ok());
    for (Map.Entry<String, Object> e : facts.entrySet()) {
      out.append(", ").append(quote(e.getKey())).append(": ").append(json(e.getValue()));
    }
    out.append(", \"failures\": ").append(json(failures)).append('}');
    System.out.println(out);
    System.out.flush();
    System.exit(ok() ? 0 : 1);
  }

  /** Runs `body`, turning an exception into a failure, then finishes. */
  static void run(Report report, ThrowingRunnable body) {
    try {
      body.run();
    } catch (Throwable e) {
      e.printStackTrace(System.out);
      report.check(false, "exception: " + e);
    }
    report.finish();
  }

  interface ThrowingRunnable {
    void run() throws Exception;
  }

  /** Polls `condition` every 100 ms for up to `millis`; whether it came true. */
  static boolean eventually(long millis, BooleanSupplier condition) throws InterruptedException {
    long deadline = System.currentTimeMillis() + millis;
    while (System.currentTimeMillis() < deadline) {
      if (condition.getAsBoolean()) {
        return true;
      }
      Thread.sleep(100);
    }
    return condition.getAsBoolean();
  }

  static Properties props(String bootstrap, String... keyValues) {
    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap);
    for (int i = 0; i + 1 < keyValues.length; i += 2) {
      p.put(keyValues[i], keyValues[i + 1]);
    }
    return p;
  }

  static String quote(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        default -> {
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"').toString();
  }

  static String json(Object v) {
    if (v == null) {
      return "null";
    } else if (v instanceof Number || v instanceof Boolean) {
      return v.toString();
    } else if (v instanceof Map<?, ?> m) {
      StringBuilder b = new StringBuilder("{");
      for (Map.Entry<?, ?> e : m.entrySet()) {
        if (b.length() > 1) {
          b.append(", ");
        }
        b.append(quote(String.valueOf(e.getKey()))).append(": ").append(json(e.getValue()));
      }
      return b.append('}').toString();
    } else if (v instanceof Iterable<?> it) {
      StringBuilder b = new StringBuilder("[");
      for (Object o : it) {
        if (b.length() > 1) {
          b.append(", ");
        }
        b.append(json(o));
      }
      return b.append(']').toString();
    }
    return quote(v.toString());
  }
}
