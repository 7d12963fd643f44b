<?php
/*
 * comet.php: publish to comet-fcgi from PHP (README, comet-fcgi(8)). One
 * file, PHP 7.4+, needing nothing beyond the curl extension, and falling
 * back to PHP's http:// streams when curl is absent.
 *
 *   require 'comet.php';
 *   $comet = new Comet\Client('http://127.0.0.1/comet');   // keys: see __construct
 *   $id = $comet->publish('chat', ['name' => 'ann', 'text' => 'hi']);   // JSON
 *   $id = $comet->publish('news', 'plain text');                         // text/plain
 *   $info = $comet->info('chat');        // ['channel'=>..., 'last_id'=>..., ...]
 *   $tok = $comet->token('private-ann', 3600);   // needs the token key
 *   $tok = $comet->presenceToken('presence-room', 'u42', ['name' => 'Ann']);
 *
 * Every failure (bad arguments, an unreadable configuration, network,
 * non-2xx answer, malformed answer) throws a Comet\Exception, and nothing
 * else does: its message is the server's error text or what went wrong
 * here, and getStatus() the HTTP status (0 when no answer came).
 */

namespace Comet;

class Exception extends \RuntimeException
{
    /** @var int HTTP status; 0 when there was no answer */
    private $status;
    /** @var mixed the decoded error body, when there was one */
    private $body;

    public function __construct(string $message, int $status = 0, $body = null, ?\Throwable $previous = null)
    {
        parent::__construct($message, $status, $previous);
        $this->status = $status;
        $this->body = $body;
    }

    public function getStatus(): int
    {
        return $this->status;
    }

    public function getBody()
    {
        return $this->body;
    }
}

class Client
{
    /** @var string */
    private $base;
    /** @var ?string */
    private $publishKey;
    /** @var ?string */
    private $tokenKey;
    /** @var float */
    private $timeout;
    /** @var bool */
    private $useCurl;

    /** Where comet-fcgi's settings are when COMET_CONFIG does not say:
     * the Debian package's file, then `make install`'s. */
    const CONFIG_FILES = ['/etc/comet-fcgi/comet-fcgi.conf', '/usr/local/etc/comet-fcgi/comet-fcgi.conf'];

    /**
     * @param string  $baseUrl    where comet-fcgi is mounted, e.g. "http://127.0.0.1/comet"
     * @param ?string $publishKey COMET_PUBLISH_KEY of the server; null: from
     *                            the configuration file (readConfig), else the
     *                            environment; '': none
     * @param array   $options    'token_key' => COMET_TOKEN_KEY (for token();
     *                            found like the publish key when absent),
     *                            'config' => the configuration file to read,
     *                            'timeout' => seconds per request (default 10),
     *                            'transport' => 'curl' | 'stream' (default: curl when loaded)
     */
    public function __construct(string $baseUrl, ?string $publishKey = null, array $options = [])
    {
        if (!preg_match('#^https?://#i', $baseUrl)) {
            throw new Exception('Comet\Client: the base URL must be http:// or https://');
        }
        $this->base = rtrim($baseUrl, '/');
        $tokenKey = array_key_exists('token_key', $options) ? $options['token_key'] : null;
        if ($publishKey === null || $tokenKey === null) {
            $conf = self::readConfig($options['config'] ?? null);
            $publishKey = $publishKey ?? ($conf['COMET_PUBLISH_KEY'] ?? (getenv('COMET_PUBLISH_KEY') ?: null));
            $tokenKey = $tokenKey ?? ($conf['COMET_TOKEN_KEY'] ?? (getenv('COMET_TOKEN_KEY') ?: null));
        }
        $this->publishKey = ($publishKey === '') ? null : $publishKey;
        $this->tokenKey = ($tokenKey === null || $tokenKey === '') ? null : (string)$tokenKey;
        $this->timeout = isset($options['timeout']) ? (float)$options['timeout'] : 10.0;
        $transport = $options['transport'] ?? (extension_loaded('curl') ? 'curl' : 'stream');
        if ($transport !== 'curl' && $transport !== 'stream') {
            throw new Exception("Comet\\Client: transport must be 'curl' or 'stream'");
        }
        if ($transport === 'curl' && !extension_loaded('curl')) {
            throw new Exception('Comet\Client: the curl extension is not loaded');
        }
        $this->useCurl = $transport === 'curl';
    }

    /**
     * comet-fcgi's settings file as [NAME => value] (NAME = value lines, '#'
     * comments, values optionally quoted, as the program reads it). $path
     * null: COMET_CONFIG, else the first of CONFIG_FILES that exists; []
     * when there is none. A file that exists and cannot be read throws.
     */
    public static function readConfig(?string $path = null): array
    {
        if ($path === null) {
            $env = getenv('COMET_CONFIG');
            if ($env !== false) {
                $path = $env;
            } else {
                foreach (self::CONFIG_FILES as $f) {
                    if (@is_file($f)) {
                        $path = $f;
                        break;
                    }
                }
            }
        }
        if ($path === null || $path === '') {
            return [];
        }
        $text = @is_file($path) ? @file_get_contents($path) : false;
        if ($text === false) {
            $who = function_exists('posix_geteuid') ? ' as uid ' . posix_geteuid() : '';
            throw new Exception("cannot read the comet-fcgi configuration $path$who: pass the keys "
                . "to Comet\\Client, or let this user read the file (the package makes it root:www-data 0640)");
        }
        $conf = [];
        foreach (preg_split('/\r?\n/', $text) as $line) {
            $line = trim($line);
            $eq = strpos($line, '=');
            if ($line === '' || $line[0] === '#' || $eq === false) {
                continue;
            }
            $v = trim(substr($line, $eq + 1));
            if (strlen($v) >= 2 && ($v[0] === '"' || $v[0] === "'") && substr($v, -1) === $v[0]) {
                $v = substr($v, 1, -1);
            }
            $conf[trim(substr($line, 0, $eq))] = $v;
        }
        return $conf;
    }

    /** 'curl' or 'stream': how requests are made. */
    public function transport(): string
    {
        return $this->useCurl ? 'curl' : 'stream';
    }

    /**
     * Appends a message to $channel; returns its id. Arrays, objects and
     * other non-strings are JSON-encoded and sent as application/json;
     * strings are sent as given, as text/plain unless $type says otherwise
     * (with $type 'application/json' a string must already be JSON).
     */
    public function publish(string $channel, $data, ?string $type = null): int
    {
        if (is_string($data)) {
            $body = $data;
            $type = $type ?? 'text/plain';
        } else {
            try {
                $body = json_encode($data, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
                    | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR);
            } catch (\JsonException $e) {
                throw new Exception('cannot encode the message as JSON: ' . $e->getMessage(), 0, null, $e);
            }
            $type = $type ?? 'application/json';
        }
        $ack = $this->request('POST', 'pub', ['channel' => $channel], $body, $type);
        if (!isset($ack['id']) || !is_int($ack['id'])) {
            throw new Exception('publish: the answer has no id', 201, $ack);
        }
        return $ack['id'];
    }

    /**
     * Publishes several messages in one transaction; $messages is a list of
     * ['channel' => ..., 'data' => ..., 'type' => ...] ('type' optional; data
     * that is not a string is sent as JSON). Returns the list of acks.
     */
    public function publishBatch(array $messages): array
    {
        $items = [];
        foreach ($messages as $m) {
            if (!is_array($m) || !isset($m['channel']) || !array_key_exists('data', $m)) {
                throw new Exception('publishBatch: each message needs channel and data');
            }
            $item = ['channel' => (string)$m['channel'], 'data' => $m['data']];
            if (isset($m['type'])) {
                $item['type'] = (string)$m['type'];
            }
            $items[] = $item;
        }
        $body = json_encode($items, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
        return $this->request('POST', 'pub', [], $body, 'application/json')['messages'];
    }

    /** Channel info: ['channel' => ..., 'last_id' => ..., 'first_id' => ..., 'messages' => N]. */
    public function info(string $channel): array
    {
        return $this->request('GET', 'pub', ['channel' => $channel]);
    }

    /** Drops every message of $channel. */
    public function delete(string $channel): array
    {
        return $this->request('DELETE', 'pub', ['channel' => $channel]);
    }

    /** The server's counters (GET .../stats). */
    public function stats(): array
    {
        return $this->request('GET', 'stats', []);
    }

    /**
     * A token letting a browser subscribe to the private channel $channel
     * for $ttlSeconds: "<expiry>.<hex HMAC-SHA256(token key, "<channel>:<expiry>")>".
     * The key is COMET_TOKEN_KEY, given here or as the 'token_key' option.
     */
    public function token(string $channel, int $ttlSeconds = 3600, ?string $tokenKey = null): string
    {
        $key = $tokenKey ?? $this->tokenKey;
        if ($key === null || $key === '') {
            throw new Exception('Comet\Client::token: no token key (COMET_TOKEN_KEY in the configuration file, or the token_key option)');
        }
        return self::makeToken($key, $channel, time() + $ttlSeconds);
    }

    /** The token for $channel valid until $expiry (Unix seconds). */
    public static function makeToken(string $tokenKey, string $channel, int $expiry): string
    {
        return $expiry . '.' . hash_hmac('sha256', $channel . ':' . $expiry, $tokenKey);
    }

    /**
     * A token letting a browser subscribe to the presence channel $channel
     * ("presence-...") for $ttlSeconds as member $memberId, whom the others
     * see with $info (any JSON value: a name, an avatar): "<expiry>.<member>.<hex>",
     * <member> the base64url (no padding) of {"id": ..., "info": ...} and
     * <hex> HMAC-SHA256(token key, "<channel>:<expiry>:<member>"). Every tab
     * given the same $memberId is one member. The key as for token().
     */
    public function presenceToken(string $channel, string $memberId, $info = null, int $ttlSeconds = 3600,
                                  ?string $tokenKey = null): string
    {
        $key = $tokenKey ?? $this->tokenKey;
        if ($key === null || $key === '') {
            throw new Exception('Comet\Client::presenceToken: no token key (COMET_TOKEN_KEY in the configuration file, or the token_key option)');
        }
        return self::makePresenceToken($key, $channel, time() + $ttlSeconds, $memberId, $info);
    }

    /** The presence token for $channel and the member valid until $expiry. */
    public static function makePresenceToken(string $tokenKey, string $channel, int $expiry, string $memberId,
                                             $info = null): string
    {
        if (strncmp($channel, 'presence-', 9) !== 0) {
            throw new Exception("Comet\\Client: $channel is not a presence channel (presence-...)");
        }
        if ($memberId === '') {
            throw new Exception('Comet\Client: a member needs an id');
        }
        $json = json_encode(['id' => $memberId, 'info' => $info],
                            JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
        // comet-fcgi takes at most 1024 bytes of a member's JSON.
        if ($json === false || strlen($json) > 1024) {
            throw new Exception('Comet\Client: the member must be UTF-8 text and at most 1024 bytes of JSON');
        }
        $member = rtrim(strtr(base64_encode($json), '+/', '-_'), '=');
        return $expiry . '.' . $member . '.' . hash_hmac('sha256', $channel . ':' . $expiry . ':' . $member, $tokenKey);
    }

    // ------------------------------------------------------------------

    private function url(string $endpoint, array $query): string
    {
        $url = $this->base . '/' . $endpoint;
        return $query ? $url . '?' . http_build_query($query, '', '&', PHP_QUERY_RFC3986) : $url;
    }

    private function headers(?string $type): array
    {
        $h = ['Accept: application/json'];
        if ($type !== null) {
            $h[] = 'Content-Type: ' . $type;
        }
        if ($this->publishKey !== null) {
            $h[] = 'Authorization: Bearer ' . $this->publishKey;
        }
        return $h;
    }

    /** One request; the decoded JSON of a 2xx answer, else a Comet\Exception. */
    private function request(string $method, string $endpoint, array $query, ?string $body = null,
                             ?string $type = null): array
    {
        $url = $this->url($endpoint, $query);
        [$status, $text] = $this->useCurl
            ? $this->viaCurl($method, $url, $body, $type)
            : $this->viaStream($method, $url, $body, $type);
        $json = json_decode($text, true);
        if ($status < 200 || $status > 299) {
            $msg = is_array($json) && isset($json['error']) && is_string($json['error'])
                ? $json['error'] : "HTTP $status from $method $url";
            throw new Exception($msg, $status, $json);
        }
        if (!is_array($json)) {
            throw new Exception("malformed answer (not a JSON object or array) from $method $url", $status, $text);
        }
        return $json;
    }

    private function viaCurl(string $method, string $url, ?string $body, ?string $type): array
    {
        $ch = curl_init($url);
        $opts = [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            // "Expect:" stops curl from waiting for 100 Continue on big bodies.
            CURLOPT_HTTPHEADER => array_merge($this->headers($type), ['Expect:']),
            CURLOPT_TIMEOUT_MS => (int)($this->timeout * 1000),
            CURLOPT_CONNECTTIMEOUT_MS => (int)(min($this->timeout, 10) * 1000),
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
        ];
        if ($body !== null) {
            $opts[CURLOPT_POSTFIELDS] = $body;
        }
        curl_setopt_array($ch, $opts);
        $text = curl_exec($ch);
        if ($text === false) {
            $err = curl_error($ch);
            curl_close($ch);
            throw new Exception("cannot reach comet-fcgi at $url: $err", 0);
        }
        $status = (int)curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        curl_close($ch);
        return [$status, $text];
    }

    private function viaStream(string $method, string $url, ?string $body, ?string $type): array
    {
        $headers = $this->headers($type);
        $headers[] = 'Connection: close';
        $http = [
            'method' => $method,
            'header' => implode("\r\n", $headers),
            'timeout' => $this->timeout,
            'ignore_errors' => true,          // read the body of 4xx/5xx too
            'follow_location' => 0,
            'protocol_version' => 1.0,        // no chunked answers to decode
        ];
        if ($body !== null) {
            $http['content'] = $body;
        }
        $ctx = stream_context_create(['http' => $http]);
        $error = null;
        set_error_handler(function ($no, $str) use (&$error) {
            $error = $str;
            return true;
        });
        try {
            $text = file_get_contents($url, false, $ctx);
        } finally {
            restore_error_handler();
        }
        // The answer's header lines: PHP 8.4+ has a function for them; before,
        // the http wrapper sets $http_response_header in this scope.
        $head = function_exists('http_get_last_response_headers')
            ? (http_get_last_response_headers() ?? [])
            : ($http_response_header ?? []);
        if ($text === false || !$head) {
            throw new Exception("cannot reach comet-fcgi at $url: " . ($error ?? 'no answer'), 0);
        }
        $status = 0;
        foreach ($head as $line) {   // the last status line wins (after any 100 Continue)
            if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $m)) {
                $status = (int)$m[1];
            }
        }
        return [$status, $text];
    }
}
