// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title USDT for the m2m-pay testnet
/// @notice A 6-decimal ERC-20 that behaves like the USDT machines use on peaq (Tether's
/// TetherTokenV2): EIP-2612 `permit` and EIP-3009 transfers by signed authorization, so that a
/// device can pay with a signature and let someone else (an x402 facilitator) submit and pay
/// the gas. The owner can mint; on the testnet that is the faucet.
/// @dev EIP-712 domain: {name: "Tether USD", version: "1", chainId, verifyingContract}.
/// `DOMAIN_SEPARATOR()` and `eip712Domain()` (EIP-5267) always agree, also after a fork
/// changes the chain id.
contract USDT {
    string public constant name = "Tether USD";
    string public constant symbol = "USDT";
    string public constant version = "1";
    uint8 public constant decimals = 6;

    uint256 public totalSupply;
    address public owner;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    /// EIP-2612 nonces.
    mapping(address => uint256) public nonces;
    /// EIP-3009: authorizer => nonce => the EIP-712 digest of the authorization executed under
    /// it, or `CANCELED`; zero while unused. Remembering the digest, not just "used", lets the
    /// chain prove that exactly this authorization (this value, to this payee) moved the money:
    /// a cancellation, or a smaller authorization signed under the same nonce, leaves a
    /// different mark.
    mapping(address => mapping(bytes32 => bytes32)) private _authorizations;

    bytes32 public constant PERMIT_TYPEHASH = keccak256(
        "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
    );
    bytes32 public constant TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 public constant RECEIVE_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 public constant CANCEL_AUTHORIZATION_TYPEHASH =
        keccak256("CancelAuthorization(address authorizer,bytes32 nonce)");
    /// What `authorizationDigest` answers for a canceled nonce: no EIP-712 digest equals it.
    bytes32 public constant CANCELED = bytes32(uint256(1));
    bytes32 private constant _DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    /// Largest `s` of a canonical (low-s) secp256k1 signature.
    uint256 private constant _HALF_CURVE_ORDER =
        0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    uint256 private immutable _cachedChainId;
    bytes32 private immutable _cachedDomainSeparator;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    /// EIP-5267: the domain never changes except through the chain id.
    event EIP712DomainChanged();

    constructor(address initialOwner) {
        require(initialOwner != address(0), "USDT: owner is the zero address");
        owner = initialOwner;
        _cachedChainId = block.chainid;
        _cachedDomainSeparator = _buildDomainSeparator();
        emit OwnershipTransferred(address(0), initialOwner);
    }

    // ---- owner -------------------------------------------------------------------------------

    modifier onlyOwner() {
        require(msg.sender == owner, "USDT: caller is not the owner");
        _;
    }

    /// @notice Creates `amount` tokens for `to`. Only the owner (the testnet faucet) may mint.
    function mint(address to, uint256 amount) external onlyOwner {
        require(to != address(0), "USDT: mint to the zero address");
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        require(newOwner != address(0), "USDT: owner is the zero address");
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    // ---- ERC-20 ------------------------------------------------------------------------------

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        _approve(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "USDT: insufficient allowance");
            _approve(from, msg.sender, allowed - value);
        }
        _transfer(from, to, value);
        return true;
    }

    // ---- EIP-712 -----------------------------------------------------------------------------

    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() public view returns (bytes32) {
        return block.chainid == _cachedChainId ? _cachedDomainSeparator : _buildDomainSeparator();
    }

    /// @notice EIP-5267: the fields of the EIP-712 domain (name, version, chainId,
    /// verifyingContract).
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory domainName,
            string memory domainVersion,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return (hex"0f", name, version, block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    // ---- EIP-2612 ----------------------------------------------------------------------------

    function permit(
        address holder,
        address spender,
        uint256 value,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        require(deadline >= block.timestamp, "USDT: permit is expired");
        bytes32 structHash =
            keccak256(abi.encode(PERMIT_TYPEHASH, holder, spender, value, nonces[holder]++, deadline));
        _requireSignedBy(holder, structHash, v, r, s);
        _approve(holder, spender, value);
    }

    // ---- EIP-3009 ----------------------------------------------------------------------------

    /// @notice Whether `authorizer` has used or canceled the authorization `nonce`.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool) {
        return _authorizations[authorizer][nonce] != bytes32(0);
    }

    /// @notice What was done under `authorizer`'s `nonce`: the EIP-712 digest (the value that
    /// was signed) of the authorization executed, `CANCELED`, or zero if nothing yet.
    function authorizationDigest(address authorizer, bytes32 nonce) external view returns (bytes32) {
        return _authorizations[authorizer][nonce];
    }

    /// @notice Moves `value` from `from` to `to` with `from`'s signed authorization; anyone may
    /// submit it (and pay the gas).
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        _useAuthorization(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, v, r, s
        );
        _transfer(from, to, value);
    }

    /// @notice Like `transferWithAuthorization`, but only the payee may submit it, so that a
    /// front-runner cannot use the authorization outside the payee's own transaction.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        require(to == msg.sender, "USDT: caller must be the payee");
        _useAuthorization(
            RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, v, r, s
        );
        _transfer(from, to, value);
    }

    /// @notice Cancels an unused authorization, signed by its authorizer.
    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)
        external
    {
        require(_authorizations[authorizer][nonce] == bytes32(0), "USDT: authorization is used or canceled");
        _requireSignedBy(
            authorizer, keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce)), v, r, s
        );
        _authorizations[authorizer][nonce] = CANCELED;
        emit AuthorizationCanceled(authorizer, nonce);
    }

    // ---- internals ---------------------------------------------------------------------------

    function _useAuthorization(
        bytes32 typeHash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) private {
        require(block.timestamp > validAfter, "USDT: authorization is not yet valid");
        require(block.timestamp < validBefore, "USDT: authorization is expired");
        require(_authorizations[from][nonce] == bytes32(0), "USDT: authorization is used or canceled");
        bytes32 digest = _requireSignedBy(
            from, keccak256(abi.encode(typeHash, from, to, value, validAfter, validBefore, nonce)), v, r, s
        );
        _authorizations[from][nonce] = digest;
        emit AuthorizationUsed(from, nonce);
    }

    /// Returns the EIP-712 digest that `signer` signed.
    function _requireSignedBy(address signer, bytes32 structHash, uint8 v, bytes32 r, bytes32 s)
        private
        view
        returns (bytes32 digest)
    {
        require(uint256(s) <= _HALF_CURVE_ORDER, "USDT: invalid signature");
        require(v == 27 || v == 28, "USDT: invalid signature");
        digest = keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR(), structHash));
        address recovered = ecrecover(digest, v, r, s);
        require(recovered != address(0) && recovered == signer, "USDT: invalid signature");
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(_DOMAIN_TYPEHASH, keccak256(bytes(name)), keccak256(bytes(version)), block.chainid, address(this))
        );
    }

    function _transfer(address from, address to, uint256 value) private {
        require(to != address(0), "USDT: transfer to the zero address");
        uint256 balance = balanceOf[from];
        require(balance >= value, "USDT: transfer amount exceeds balance");
        unchecked {
            balanceOf[from] = balance - value;
        }
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }

    function _approve(address holder, address spender, uint256 value) private {
        require(spender != address(0), "USDT: approve to the zero address");
        allowance[holder][spender] = value;
        emit Approval(holder, spender, value);
    }
}
