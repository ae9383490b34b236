// StreamdDynamoDBLocal starts AWS DynamoDB Local (DynamoDBLocal.jar) for the
// streamd tests, with two things the jar's own main lacks:
//
//   - it binds the DynamoDB endpoint to 127.0.0.1 only (the jar has no host
//     flag and would listen on every interface), and
//   - it serves a loopback admin port with the test controls every local
//     database object has: POST /rollover calls triggerShardRollovers()
//     (closes every open stream shard and opens a child), POST
//     /dilate?hours=N calls dilateEventTimes(N h in ms) (ages stream records
//     so trimming can be tested).
//
// Usage: java -cp DynamoDBLocal.jar:DynamoDBLocal_lib/*:DIR
//            -Djava.library.path=DynamoDBLocal_lib
//            StreamdDynamoDBLocal ADMIN_PORT [DynamoDBLocal args...]
//
// It prints "streamd-ddblocal ready" on stdout once both ports listen.
// internal/testenv compiles it with javac against the jar into a cache
// directory; it uses reflection for the jar's private fields.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

public final class StreamdDynamoDBLocal {
    private static final String LOOPBACK = "127.0.0.1";

    public static void main(String[] argv) throws Exception {
        if (argv.length < 1) {
            System.err.println("usage: StreamdDynamoDBLocal ADMIN_PORT [DynamoDBLocal args...]");
            System.exit(2);
        }
        int adminPort = Integer.parseInt(argv[0]);
        String[] args = Arrays.copyOfRange(argv, 1, argv.length);

        Class<?> runner = Class.forName("software.amazon.dynamodb.services.local.main.ServerRunner");
        Method create = runner.getMethod("createServerFromCommandLineArgs", String[].class);
        Object proxy = create.invoke(null, (Object) args);

        Object jetty = field(proxy, "server");
        Object[] connectors = (Object[]) jetty.getClass().getMethod("getConnectors").invoke(jetty);
        int bound = 0;
        for (Object c : connectors) {
            Class<?> sc = Class.forName("org.eclipse.jetty.server.ServerConnector", false, jetty.getClass().getClassLoader());
            if (sc.isInstance(c)) {
                sc.getMethod("setHost", String.class).invoke(c, LOOPBACK);
                bound++;
            }
        }
        if (bound == 0) {
            throw new IllegalStateException("no Jetty ServerConnector to bind to " + LOOPBACK);
        }
        Object handler = field(proxy, "serverHandler");
        Object primary = field(handler, "primaryHandler");

        HttpServer admin = HttpServer.create(new InetSocketAddress(LOOPBACK, adminPort), 8);
        admin.createContext("/rollover", ex -> serve(ex, () -> {
            int n = 0;
            for (Object db : databases(primary)) {
                db.getClass().getMethod("triggerShardRollovers").invoke(db);
                n++;
            }
            return "rolled over " + n + " databases";
        }));
        admin.createContext("/dilate", ex -> serve(ex, () -> {
            String q = ex.getRequestURI().getQuery();
            if (q == null || !q.startsWith("hours=")) {
                throw new IllegalArgumentException("want ?hours=N");
            }
            long hours = Long.parseLong(q.substring("hours=".length()));
            int n = 0;
            for (Object db : databases(primary)) {
                // The jar's argument is milliseconds (it logs "timeDilation of {} ms").
                db.getClass().getMethod("dilateEventTimes", long.class).invoke(db, hours * 3_600_000L);
                n++;
            }
            return "dilated " + n + " databases by " + hours + "h";
        }));
        admin.start();

        proxy.getClass().getMethod("start").invoke(proxy);
        System.out.println("streamd-ddblocal ready");
        System.out.flush();
        proxy.getClass().getMethod("join").invoke(proxy);
    }

    private interface Action {
        String run() throws Exception;
    }

    private static void serve(HttpExchange ex, Action a) {
        int code = 200;
        String body;
        try {
            if (!"POST".equals(ex.getRequestMethod())) {
                code = 405;
                body = "POST only";
            } else {
                body = a.run();
            }
        } catch (Throwable t) {
            code = 500;
            Throwable c = t.getCause() != null ? t.getCause() : t;
            body = c.toString();
        }
        try {
            byte[] b = (body + "\n").getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(code, b.length);
            ex.getResponseBody().write(b);
        } catch (Exception ignored) {
            // the client went away
        } finally {
            ex.close();
        }
    }

    // databases returns the local database objects the request handler has
    // opened (one per access key and region, or one with -sharedDb).
    private static List<Object> databases(Object primary) throws Exception {
        Object m = field(primary, "dbRequestHandlers");
        List<Object> out = new ArrayList<>();
        synchronized (primary) {
            out.addAll(((Map<?, ?>) m).values());
        }
        return out;
    }

    private static Object field(Object o, String name) throws Exception {
        for (Class<?> c = o.getClass(); c != null; c = c.getSuperclass()) {
            try {
                Field f = c.getDeclaredField(name);
                f.setAccessible(true);
                return f.get(o);
            } catch (NoSuchFieldException e) {
                // look in the superclass
            }
        }
        throw new NoSuchFieldException(o.getClass().getName() + "." + name);
    }
}
