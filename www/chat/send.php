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

require __DIR__ . '/common.php';

same_site_post('name and text');

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
