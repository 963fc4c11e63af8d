import com.amazonaws.auth.AWSStaticCredentialsProvider;
import com.amazonaws.auth.BasicAWSCredentials;
import com.amazonaws.services.kinesis.producer.KinesisProducer;
import com.amazonaws.services.kinesis.producer.KinesisProducerConfiguration;
import com.amazonaws.services.kinesis.producer.UserRecordResult;
import com.google.common.util.concurrent.ListenableFuture;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes `records` user records of `size` bytes, each with its own partition key, through the
 * KPL with aggregation on, and prints one line: "records=N seconds=S failed=F".
 *
 * Arguments: host tls-port stream records size.
 */
public final class KplPeer {
    public static void main(String[] args) throws Exception {
        String host = args[0];
        long port = Long.parseLong(args[1]);
        String stream = args[2];
        int records = Integer.parseInt(args[3]);
        int size = Integer.parseInt(args[4]);
        KinesisProducerConfiguration config = new KinesisProducerConfiguration()
                .setRegion("us-east-1")
                .setKinesisEndpoint(host)
                .setKinesisPort(port)
                .setCloudwatchEndpoint(host)
                .setCloudwatchPort(port)
                .setStsEndpoint(System.getProperty("sts.host", host))
                .setStsPort(Long.getLong("sts.port", port))
                .setVerifyCertificate(false)
                .setMetricsLevel("none")
                .setAggregationEnabled(true)
                .setAggregationMaxSize(51200)
                .setRecordMaxBufferedTime(100)
                .setRequestTimeout(60_000)
                .setCredentialsProvider(
                        new AWSStaticCredentialsProvider(new BasicAWSCredentials("bench", "bench")));
        KinesisProducer producer = new KinesisProducer(config);
        byte[] payload = new byte[size];
        for (int i = 0; i < size; i++) {
            payload[i] = (byte) (i * 31 + 7);
        }
        long started = System.nanoTime();
        List<ListenableFuture<UserRecordResult>> results = new ArrayList<>(records);
        for (int i = 0; i < records; i++) {
            results.add(producer.addUserRecord(stream, String.format("%016x", i * 0x9E3779B97F4A7C15L), ByteBuffer.wrap(payload)));
        }
        producer.flushSync();
        int failed = 0;
        for (ListenableFuture<UserRecordResult> result : results) {
            if (!result.get().isSuccessful()) {
                failed++;
            }
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        System.out.printf("records=%d seconds=%.3f failed=%d%n", records, seconds, failed);
        producer.destroy();
    }
}
