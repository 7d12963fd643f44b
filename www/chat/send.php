<?php
/*
 * The chat demo's publisher: POST name and text (a form), publishes
 * {"name": ..., "text": ...} as JSON on channel "chat" with comet.php, and
 * answers {"id": N} (201) or {"error": ..., "status": N}.
 *
 * comet-fcgi is reached at CHAT_COMET_URL from the environment, by default
 * http://<this server's address>:<port>/comet (loopback publishing needs no
 * key); COMET_PUBLISH_KEY, when set in PHP's environment, is sent as the key.
 */
declare(strict_types=1);

require __DIR__ . '/../comet.php';

header('Content-Type: application/json; charset=utf-8');
header('Cache-Control: no-store');
header('X-Content-Type-Options: nosniff');

function answer(int $status, array $body): void
{
    http_response_code($status);
    echo json_encode($body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
    exit;
}

function field(string $name, int $max): string
{
    $v = $_POST[$name] ?? '';
    if (!is_string($v) || !preg_match('//u', $v)) {
        answer(400, ['error' => "$name must be UTF-8 text", 'status' => 400]);
    }
    $v = trim(preg_replace('/[\x00-\x1F\x7F]+/u', ' ', $v));
    $len = preg_match_all('/./us', $v);
    if ($len < 1 || $len > $max) {
        answer(400, ['error' => "$name must be 1 to $max characters", 'status' => 400]);
    }
    return $v;
}

if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
    header('Allow: POST');
    answer(405, ['error' => 'POST a form with name and text', 'status' => 405]);
}
// Browsers say where a request comes from: refuse posts made by other sites.
$site = $_SERVER['HTTP_SEC_FETCH_SITE'] ?? 'same-origin';
if ($site !== 'same-origin' && $site !== 'none') {
    answer(403, ['error' => 'cross-site posts are refused', 'status' => 403]);
}

$name = field('name', 40);
$text = field('text', 500);

$base = getenv('CHAT_COMET_URL');
if (!$base) {
    $addr = $_SERVER['SERVER_ADDR'] ?? '127.0.0.1';
    if (strpos($addr, ':') !== false) {
        $addr = '[' . $addr . ']';
    }
    $base = 'http://' . $addr . ':' . ($_SERVER['SERVER_PORT'] ?? '80') . '/comet';
}

try {
    $comet = new Comet\Client($base, getenv('COMET_PUBLISH_KEY') ?: null, ['timeout' => 5]);
    $id = $comet->publish('chat', ['name' => $name, 'text' => $text]);
} catch (Comet\Exception $e) {
    error_log('chat/send.php: ' . $e->getMessage() . ' (status ' . $e->getStatus() . ')');
    answer(502, ['error' => 'could not publish: ' . $e->getMessage(), 'status' => 502]);
}
answer(201, ['id' => $id]);
